//! The seed's event envelope (SPEC §2.2): `{type, payload}` from clients, with
//! `id` and `receivedAt` assigned by the service. Unknown types are kept.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validation::{json_str, ValidationErrors};

/// Event types Micro itself understands; others are stored and listed as-is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    UserRegistered,
    UserUpdated,
    UserDeleted,
    InteractionRecorded,
    ProfileUpdated,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::UserRegistered,
        EventType::UserUpdated,
        EventType::UserDeleted,
        EventType::InteractionRecorded,
        EventType::ProfileUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserRegistered => "user.registered",
            EventType::UserUpdated => "user.updated",
            EventType::UserDeleted => "user.deleted",
            EventType::InteractionRecorded => "interaction.recorded",
            EventType::ProfileUpdated => "profile.updated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Longest accepted event type name.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// An event as posted by a client.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    #[serde(rename = "type")]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = r"^[a-z0-9._-]+$")
    )]
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>, required = false))]
    pub payload: serde_json::Value,
}

impl NewEvent {
    /// Validates `{type, payload}`: the type is a dotted name of lowercase
    /// letters, digits, `.`, `_` or `-`; the payload an object (absent means
    /// empty).
    pub fn from_json(value: &serde_json::Value) -> Result<NewEvent, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let Some(obj) = value.as_object() else {
            errors.push("$", "must be a JSON object");
            return Err(errors);
        };
        let kind = json_str(&mut errors, obj, "type", "type");
        match kind {
            None if !errors.has_field("type") => errors.push("type", "is required"),
            Some("") => errors.push("type", "must not be empty"),
            Some(k) if k.len() > MAX_EVENT_TYPE_LEN => errors.push(
                "type",
                format!("must be at most {MAX_EVENT_TYPE_LEN} bytes"),
            ),
            Some(k)
                if !k.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                }) =>
            {
                errors.push(
                    "type",
                    format!("{k:?} may only hold lowercase letters, digits, '.', '_' and '-'"),
                )
            }
            _ => {}
        }
        let payload = match obj.get("payload") {
            None | Some(serde_json::Value::Null) => serde_json::Value::Object(Default::default()),
            Some(p @ serde_json::Value::Object(_)) => p.clone(),
            Some(_) => {
                errors.push("payload", "must be a JSON object");
                serde_json::Value::Null
            }
        };
        errors.into_result(|| NewEvent {
            kind: kind.unwrap_or_default().to_owned(),
            payload,
        })
    }

    pub fn known_type(&self) -> Option<EventType> {
        EventType::parse(&self.kind)
    }
}

/// A stored event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    #[serde(with = "crate::interaction::rfc3339_micros")]
    pub received_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_and_unknown_types_are_accepted() {
        let e =
            NewEvent::from_json(&json!({"type": "user.registered", "payload": {"userId": "1"}}))
                .expect("valid");
        assert_eq!(e.known_type(), Some(EventType::UserRegistered));
        let e = NewEvent::from_json(&json!({"type": "cart.abandoned"})).expect("valid");
        assert_eq!(e.known_type(), None);
        assert_eq!(e.payload, json!({}));
    }

    #[test]
    fn bad_events_name_their_fields() {
        let err = NewEvent::from_json(&json!({"payload": 3})).expect_err("invalid");
        assert!(err.has_field("type") && err.has_field("payload"), "{err}");
        let err = NewEvent::from_json(&json!({"type": "User Registered"})).expect_err("invalid");
        assert!(err.has_field("type"));
        let err = NewEvent::from_json(&json!({"type": 5})).expect_err("invalid");
        assert_eq!(err.errors().len(), 1, "{err}");
        assert!(NewEvent::from_json(&json!("x")).unwrap_err().has_field("$"));
    }

    #[test]
    fn every_known_type_round_trips() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }
}
