//! Training labels (SPEC §2.5): any subset of spending class, life stage and
//! topics per user. Missing values are normal; each model uses the users that
//! have its label.

use serde::{Deserialize, Serialize};

use crate::user::LifeStage;
use crate::validation::ValidationErrors;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRow {
    pub user_id: String,
    pub spending_class: Option<u8>,
    pub life_stage: Option<LifeStage>,
    pub topics: Option<Vec<String>>,
}

impl LabelRow {
    /// Validates loosely typed label values, naming each bad field.
    pub fn parse(
        user_id: Option<&str>,
        spending_class: Option<i64>,
        life_stage: Option<&str>,
        topics: Option<Vec<String>>,
    ) -> Result<LabelRow, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let user_id = match user_id {
            Some(u) if !u.trim().is_empty() => u.to_owned(),
            _ => {
                errors.push("user_id", "is required");
                String::new()
            }
        };
        let spending_class = spending_class.and_then(|c| match u8::try_from(c) {
            Ok(c @ 1..=5) => Some(c),
            _ => {
                errors.push("spending_class", format!("must be 1 to 5, got \"{c}\""));
                None
            }
        });
        let life_stage = life_stage.and_then(|l| {
            let parsed = LifeStage::parse(l);
            if parsed.is_none() {
                errors.push("life_stage", format!("unknown value {l:?}"));
            }
            parsed
        });
        errors.into_result(|| LabelRow {
            user_id,
            spending_class,
            life_stage,
            topics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_validate_ranges_and_vocabulary() {
        let ok = LabelRow::parse(Some("u1"), Some(3), Some("senior"), None).expect("valid");
        assert_eq!(ok.life_stage, Some(LifeStage::Senior));
        let err = LabelRow::parse(None, Some(6), Some("teen"), None).expect_err("invalid");
        for f in ["user_id", "spending_class", "life_stage"] {
            assert!(err.has_field(f), "{err}");
        }
        let partial =
            LabelRow::parse(Some("u2"), None, None, None).expect("missing labels are fine");
        assert_eq!(partial.spending_class, None);
    }
}
