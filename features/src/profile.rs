//! The live profile messaging services read (SPEC §2.6): declared facts next to
//! what behaviour says, with the confidence and model version behind it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::user::LifeStage;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileAbout {
    /// Declared at registration; never inferred.
    pub gender: Option<String>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5))]
    pub spending_class: Option<u8>,
    /// From declared data by the fixed rules.
    pub real_life_stage: Option<LifeStage>,
    /// What behaviour says, predicted by the model.
    pub acting_life_stage: Option<LifeStage>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileConfidence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spending_class: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_life_stage: Option<f64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub user_id: String,
    pub about: ProfileAbout,
    /// Up to [`Profile::MAX_TOPICS`] topic names, strongest first.
    pub topics: Vec<String>,
    pub confidence: ProfileConfidence,
    pub interaction_count: u64,
    pub model_version: Option<String>,
    #[serde(with = "crate::interaction::rfc3339_micros")]
    pub updated_at: DateTime<Utc>,
}

impl Profile {
    pub const MAX_TOPICS: usize = 5;

    /// A profile with declared facts only: what a user has before any model
    /// has scored them.
    pub fn declared(
        user_id: String,
        gender: Option<String>,
        real: Option<LifeStage>,
        now: DateTime<Utc>,
    ) -> Profile {
        Profile {
            user_id,
            about: ProfileAbout {
                gender,
                real_life_stage: real,
                ..Default::default()
            },
            topics: Vec::new(),
            confidence: ProfileConfidence::default(),
            interaction_count: 0,
            model_version: None,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_serialises_in_the_spec_shape() {
        let mut p = Profile::declared(
            "42".into(),
            Some("female".into()),
            Some(LifeStage::YoungFamily),
            DateTime::from_timestamp(1_764_000_000, 0).unwrap_or_default(),
        );
        p.about.spending_class = Some(3);
        p.about.acting_life_stage = Some(LifeStage::YoungAdult);
        p.topics = vec!["outdoor".into(), "baby".into()];
        p.confidence.spending_class = Some(0.71);
        let v = serde_json::to_value(&p).expect("serialise");
        assert_eq!(v["userId"], "42");
        assert_eq!(v["about"]["realLifeStage"], "young_family");
        assert_eq!(v["about"]["actingLifeStage"], "young_adult");
        assert_eq!(v["about"]["spendingClass"], 3);
        assert_eq!(v["confidence"]["spendingClass"], 0.71);
        assert_eq!(v["interactionCount"], 0);
        assert!(v["updatedAt"].as_str().is_some_and(|s| s.ends_with('Z')));
        let back: Profile = serde_json::from_value(v).expect("deserialise");
        assert_eq!(back, p);
    }
}
