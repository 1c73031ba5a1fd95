//! User registration (SPEC §2.3) and the declared-data life-stage rules
//! (SPEC §2.6). Declared data is the only source of `gender` and
//! `realLifeStage`; behaviour never overrides it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::validation::{json_id, json_str, ValidationErrors};

/// Life-stage vocabulary, shared by declared rules, labels and models.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifeStage {
    YoungAdult,
    MidlifeAdult,
    YoungFamily,
    MatureFamily,
    Senior,
}

impl LifeStage {
    pub const ALL: [LifeStage; 5] = [
        LifeStage::YoungAdult,
        LifeStage::MidlifeAdult,
        LifeStage::YoungFamily,
        LifeStage::MatureFamily,
        LifeStage::Senior,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifeStage::YoungAdult => "young_adult",
            LifeStage::MidlifeAdult => "midlife_adult",
            LifeStage::YoungFamily => "young_family",
            LifeStage::MatureFamily => "mature_family",
            LifeStage::Senior => "senior",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The fixed rules of SPEC §2.6 on declared data: `senior` at 65+;
    /// otherwise kids > 0 gives `young_family` under 45 and `mature_family`
    /// from 45; no kids gives `young_adult` under 35 and `midlife_adult` from
    /// 35. Unknown when the age, or (under 65) the number of kids, is unknown.
    pub fn from_declared(age: Option<i32>, kids: Option<u32>) -> Option<LifeStage> {
        let age = age?;
        if age >= 65 {
            return Some(LifeStage::Senior);
        }
        Some(match (kids?, age) {
            (k, a) if k > 0 && a < 45 => LifeStage::YoungFamily,
            (k, _) if k > 0 => LifeStage::MatureFamily,
            (_, a) if a < 35 => LifeStage::YoungAdult,
            _ => LifeStage::MidlifeAdult,
        })
    }
}

impl fmt::Display for LifeStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaritalStatus {
    Single,
    Partnered,
    Married,
    Divorced,
    Widowed,
}

impl MaritalStatus {
    pub const ALL: [MaritalStatus; 5] = [
        MaritalStatus::Single,
        MaritalStatus::Partnered,
        MaritalStatus::Married,
        MaritalStatus::Divorced,
        MaritalStatus::Widowed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MaritalStatus::Single => "single",
            MaritalStatus::Partnered => "partnered",
            MaritalStatus::Married => "married",
            MaritalStatus::Divorced => "divorced",
            MaritalStatus::Widowed => "widowed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A registration (`POST /v1/users`), validated.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRegistration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(required = false, schema_with = crate::validation::optional_id_schema))]
    pub user_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254))]
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 32))]
    pub gender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1900))]
    pub birth_year: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 20))]
    pub adults: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 20))]
    pub kids: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marital_status: Option<MaritalStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 32))]
    pub income_band: Option<String>,
}

/// The fields a user declares, and may edit after registering (everything
/// but the id).
pub const DECLARED_FIELDS: [&str; 8] = [
    "email",
    "name",
    "gender",
    "birthYear",
    "adults",
    "kids",
    "maritalStatus",
    "incomeBand",
];

/// Earliest accepted birth year.
pub const MIN_BIRTH_YEAR: i32 = 1900;
/// Most adults or kids one household may declare.
pub const MAX_HOUSEHOLD: i64 = 20;

impl UserRegistration {
    /// Validates a registration body; `current_year` bounds `birthYear`.
    pub fn from_json(
        value: &serde_json::Value,
        current_year: i32,
    ) -> Result<UserRegistration, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let Some(obj) = value.as_object() else {
            errors.push("$", "must be a JSON object");
            return Err(errors);
        };
        let user_id = json_id(&mut errors, obj, "userId", "userId").map(|id| id.into_owned());
        if let Some(id) = &user_id {
            if id.trim().is_empty()
                || crate::validation::longer_than(id, crate::interaction::MAX_ID_LEN)
            {
                errors.push(
                    "userId",
                    "must be 1 to 256 characters, not blank, when given",
                );
            }
        }
        let email = json_str(&mut errors, obj, "email", "email").map(str::trim);
        match email {
            None if !errors.has_field("email") => errors.push("email", "is required"),
            Some(e) if !is_valid_email(e) => {
                errors.push("email", format!("{e:?} is not a valid e-mail address"))
            }
            _ => {}
        }
        let mut short_text = |key: &str, max: usize| -> Option<String> {
            let v = json_str(&mut errors, obj, key, key)?.trim();
            if v.is_empty() {
                return None;
            }
            if v.chars().count() > max {
                errors.push(key, format!("must be at most {max} characters"));
            }
            Some(v.to_owned())
        };
        let name = short_text("name", 200);
        let gender = short_text("gender", 32);
        let income_band = short_text("incomeBand", 32);
        let marital_status = json_str(&mut errors, obj, "maritalStatus", "maritalStatus")
            .and_then(|m| {
                let parsed = MaritalStatus::parse(m);
                if parsed.is_none() {
                    errors.push(
                        "maritalStatus",
                        format!("unknown value {m:?} (expected single, partnered, married, divorced or widowed)"),
                    );
                }
                parsed
            });
        let mut int = |key: &str, lo: i64, hi: i64| -> Option<i64> {
            match obj.get(key) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::Number(n)) => match crate::validation::whole(n) {
                    Some(v) if (lo..=hi).contains(&v) => Some(v),
                    _ => {
                        errors.push(key, format!("must be a whole number from {lo} to {hi}"));
                        None
                    }
                },
                Some(_) => {
                    errors.push(key, "must be a number");
                    None
                }
            }
        };
        let birth_year = int("birthYear", MIN_BIRTH_YEAR.into(), current_year.into());
        let adults = int("adults", 0, MAX_HOUSEHOLD);
        let kids = int("kids", 0, MAX_HOUSEHOLD);
        errors.into_result(|| UserRegistration {
            user_id,
            email: email.unwrap_or_default().to_owned(),
            name,
            gender,
            birth_year: birth_year.map(|v| v as i32),
            adults: adults.map(|v| v as u32),
            kids: kids.map(|v| v as u32),
            marital_status,
            income_band,
        })
    }

    /// This registration with a JSON merge patch (RFC 7396) applied: each
    /// key sets its field, `null` removes it, absent keys keep theirs. The
    /// result is validated like a registration (so an edit may not remove
    /// the e-mail, nor set a birth year from the future). `userId` may only
    /// repeat the id it has; keys that are not a user's fields are refused.
    /// Returns the registration and the fields whose values changed.
    pub fn patched(
        &self,
        patch: &serde_json::Map<String, serde_json::Value>,
        current_year: i32,
    ) -> Result<(UserRegistration, Vec<String>), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        for key in patch.keys() {
            if key == "userId" {
                let given = json_id(&mut errors, patch, "userId", "userId");
                if given.is_some_and(|id| Some(id.as_ref()) != self.user_id.as_deref()) {
                    errors.push("userId", "cannot be changed");
                }
            } else if !DECLARED_FIELDS.contains(&key.as_str()) {
                errors.push(
                    key.as_str(),
                    format!(
                        "is not a field of a user (expected {})",
                        DECLARED_FIELDS.join(", ")
                    ),
                );
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let before = serde_json::to_value(self).unwrap_or_default();
        let mut merged = before.as_object().cloned().unwrap_or_default();
        for (key, value) in patch.iter().filter(|(k, _)| *k != "userId") {
            if value.is_null() {
                merged.remove(key);
            } else {
                merged.insert(key.clone(), value.clone());
            }
        }
        let updated =
            UserRegistration::from_json(&serde_json::Value::Object(merged), current_year)?;
        let after = serde_json::to_value(&updated).unwrap_or_default();
        let changed = DECLARED_FIELDS
            .into_iter()
            .filter(|f| before.get(f) != after.get(f))
            .map(str::to_owned)
            .collect();
        Ok((updated, changed))
    }

    /// The declared life stage as of `year` (SPEC §2.6 rules).
    pub fn real_life_stage(&self, year: i32) -> Option<LifeStage> {
        LifeStage::from_declared(self.birth_year.map(|b| year - b), self.kids)
    }
}

/// A pragmatic address check (RFC 5321 lengths, one `@`, a dotted domain of
/// letters, digits and hyphens, no whitespace); deliverability is for the
/// mail server to judge.
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return false;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().all(char::is_alphabetic) && tld.len() >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_numbers_written_as_floats_are_accepted() {
        let r = UserRegistration::from_json(
            &json!({"email": "a@b.co", "adults": 3.0, "kids": 1e0, "birthYear": 1990.0}),
            2026,
        )
        .expect("whole numbers");
        assert_eq!(
            (r.adults, r.kids, r.birth_year),
            (Some(3), Some(1), Some(1990))
        );
        let errors = UserRegistration::from_json(&json!({"email": "a@b.co", "kids": 1.5}), 2026)
            .expect_err("1.5 kids");
        assert_eq!(errors.errors()[0].field, "kids");
    }

    #[test]
    fn life_stage_rules_follow_the_spec_boundaries() {
        use LifeStage::*;
        let cases = [
            (Some(65), None, Some(Senior)),
            (Some(80), Some(2), Some(Senior)),
            (Some(44), Some(1), Some(YoungFamily)),
            (Some(45), Some(1), Some(MatureFamily)),
            (Some(64), Some(3), Some(MatureFamily)),
            (Some(34), Some(0), Some(YoungAdult)),
            (Some(35), Some(0), Some(MidlifeAdult)),
            (Some(64), Some(0), Some(MidlifeAdult)),
            (Some(30), None, None),
            (None, Some(2), None),
        ];
        for (age, kids, want) in cases {
            assert_eq!(
                LifeStage::from_declared(age, kids),
                want,
                "age {age:?} kids {kids:?}"
            );
        }
    }

    #[test]
    fn valid_registration_parses() {
        let r = UserRegistration::from_json(
            &json!({"userId": 7, "email": " ann@example.com ", "name": "Ann", "birthYear": 1990,
                    "kids": 2, "adults": 2, "maritalStatus": "married", "gender": "female"}),
            2026,
        )
        .expect("valid");
        assert_eq!(r.user_id.as_deref(), Some("7"));
        assert_eq!(r.email, "ann@example.com");
        assert_eq!(r.real_life_stage(2026), Some(LifeStage::YoungFamily));
    }

    #[test]
    fn bad_registration_names_each_field() {
        let err = UserRegistration::from_json(
            &json!({"email": "not-an-email", "birthYear": 1800, "kids": -1, "adults": "two",
                    "maritalStatus": "complicated"}),
            2026,
        )
        .expect_err("invalid");
        for f in ["email", "birthYear", "kids", "adults", "maritalStatus"] {
            assert!(err.has_field(f), "{f} missing from {err}");
        }
        let err = UserRegistration::from_json(&json!({}), 2026).expect_err("invalid");
        assert_eq!(err.to_string(), "email: is required");
        let err = UserRegistration::from_json(&json!({"email": "a@b.co", "birthYear": 2027}), 2026)
            .expect_err("future birth year");
        assert!(err.has_field("birthYear"));
    }

    #[test]
    fn a_patch_sets_removes_and_keeps_fields_and_says_which_changed() {
        let user = UserRegistration::from_json(
            &json!({"userId": "u1", "email": "ann@example.com", "name": "Ann", "birthYear": 1990,
                    "kids": 0, "gender": "female"}),
            2026,
        )
        .expect("valid");
        let patch = json!({"kids": 2, "name": null, "gender": "female", "userId": "u1"});
        let (updated, changed) = user
            .patched(patch.as_object().expect("object"), 2026)
            .expect("valid patch");
        assert_eq!(updated.kids, Some(2));
        assert_eq!(updated.name, None, "null removes");
        assert_eq!(updated.email, "ann@example.com", "absent keeps");
        assert_eq!(updated.user_id.as_deref(), Some("u1"));
        assert_eq!(
            changed,
            vec!["name", "kids"],
            "gender was set to what it was"
        );
        assert_eq!(updated.real_life_stage(2026), Some(LifeStage::YoungFamily));
        let (same, changed) = user
            .patched(&serde_json::Map::new(), 2026)
            .expect("empty patch");
        assert_eq!((same, changed), (user.clone(), Vec::<String>::new()));
    }

    #[test]
    fn a_bad_patch_names_each_field_and_changes_nothing() {
        let user = UserRegistration::from_json(&json!({"userId": "u1", "email": "a@b.co"}), 2026)
            .expect("valid");
        for (patch, field) in [
            (json!({"email": null}), "email"),
            (json!({"email": "nope"}), "email"),
            (json!({"birthYear": 2030}), "birthYear"),
            (json!({"kids": -1}), "kids"),
            (json!({"maritalStatus": "complicated"}), "maritalStatus"),
            (json!({"userId": "u2"}), "userId"),
            (json!({"favouriteColour": "red"}), "favouriteColour"),
        ] {
            let err = user
                .patched(patch.as_object().expect("object"), 2026)
                .expect_err("invalid");
            assert_eq!(err.errors().len(), 1, "{patch}: {err}");
            assert!(err.has_field(field), "{patch}: {err}");
        }
    }

    #[test]
    fn email_check() {
        for ok in ["a@b.co", "first.last+tag@mail.example.org", "ü@bücher.de"] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a b@c.de", "a@b..co", "a@@b.co", "a@b.c0",
            ".a@b.co", "a@-b.co",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }
}
