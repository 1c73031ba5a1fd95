//! Between the protobuf messages and the domain types. Inbound messages are
//! read into the forms the JSON readers produce ([`RawInteraction`], the
//! JSON value of a registration) and checked by the same validators;
//! outbound ones are written from validated types.
//!
//! Errors name fields by their JSON paths (`actor.id`, `receivedAt`), which
//! are also the names proto3's JSON mapping gives them.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use features::interaction::{RawInteraction, RawTimestamp};
use features::{
    Entity, Event, Interaction, LifeStage, Money, Profile, ProfileAbout, ProfileConfidence,
    UserRegistration, ValidationErrors,
};
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Timestamp, Value};

use crate::v1;

/// A required string. proto3 sends an empty string and an absent one alike,
/// so both read as absent ("is required", as a JSON body without the field).
fn required(s: &str) -> Option<Cow<'_, str>> {
    (!s.is_empty()).then_some(Cow::Borrowed(s))
}

/// Microseconds since the epoch, finer digits dropped as the JSON reader
/// drops them. A timestamp whose nanos are out of range is normalised first;
/// one beyond what `i64` microseconds hold saturates, and validation then
/// refuses it as out of range.
pub fn timestamp_micros(t: &Timestamp) -> i64 {
    let mut t = *t;
    t.normalize();
    let micros = i128::from(t.seconds) * 1_000_000 + i128::from(t.nanos.div_euclid(1_000));
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// The instant as a protobuf timestamp.
pub fn timestamp(t: &DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A timestamp that must be there and hold an instant Micro can keep.
fn instant(
    errors: &mut ValidationErrors,
    field: &str,
    t: Option<&Timestamp>,
) -> Option<DateTime<Utc>> {
    let Some(t) = t else {
        errors.push(field, "is required");
        return None;
    };
    let at = DateTime::from_timestamp_micros(timestamp_micros(t));
    if at.is_none() {
        errors.push(field, "is out of range");
    }
    at
}

impl v1::Interaction {
    /// The interaction as received, for [`RawInteraction::validate`]; only a
    /// `value` with neither amount nor currency is refused here, as the
    /// JSON reader refuses `"value": {}` before the rules are checked.
    pub fn to_raw(&self) -> Result<RawInteraction<'_>, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        fn entity(e: &Option<v1::Entity>) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
            match e {
                Some(e) => (required(&e.id), required(&e.r#type)),
                None => (None, None),
            }
        }
        let (origin_id, origin_type) = entity(&self.origin);
        let (actor_id, actor_type) = entity(&self.actor);
        let (target_id, target_type) = entity(&self.target);
        let (amount, currency) = match &self.value {
            None => (None, None),
            Some(v) => {
                let currency = required(&v.currency);
                if v.amount.is_none() && currency.is_none() {
                    errors.push("value", "must have amount and currency, or be null");
                }
                (v.amount, currency)
            }
        };
        let raw = RawInteraction {
            id: self.id.as_deref().map(Cow::Borrowed),
            kind: required(&self.r#type),
            timestamp: self.timestamp.as_ref().map_or(RawTimestamp::Missing, |t| {
                RawTimestamp::Micros(timestamp_micros(t))
            }),
            origin_id,
            origin_type,
            actor_id,
            actor_type,
            target_id,
            target_type,
            amount,
            currency,
            quantity: self.quantity,
        };
        errors.into_result(|| raw)
    }

    /// Validates as a JSON interaction is validated: every problem by field,
    /// the id derived from the content when absent.
    pub fn validate(&self) -> Result<Interaction, ValidationErrors> {
        self.to_raw()?.validate()
    }

    /// [`v1::Interaction::validate`], moving the message's strings into the
    /// interaction instead of copying them (decoding allocated them once
    /// already); an invalid message is given back with its errors.
    pub fn into_valid(self) -> Result<Interaction, Invalid> {
        let checked = match self.to_raw().and_then(|raw| {
            raw.check()
                .map(|c| (derived(c.id), c.kind, c.timestamp_micros))
        }) {
            Ok(checked) => checked,
            Err(errors) => {
                return Err(Invalid {
                    errors,
                    item: Box::new(self),
                })
            }
        };
        let (derived_id, kind, micros) = checked;
        // Checked: every entity is there and a value has amount and currency.
        let entity = |e: Option<v1::Entity>| {
            let e = e.unwrap_or_default();
            Entity {
                id: e.id,
                kind: e.r#type,
            }
        };
        Ok(Interaction {
            id: derived_id.or(self.id).unwrap_or_default(),
            kind,
            timestamp: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
            origin: entity(self.origin),
            actor: entity(self.actor),
            target: entity(self.target),
            value: self.value.map(|m| Money {
                amount: m.amount.unwrap_or_default(),
                currency: m.currency,
            }),
            quantity: self.quantity,
        })
    }
}

/// The id validation derived from the content; `None` when it was given.
fn derived(id: Cow<'_, str>) -> Option<String> {
    match id {
        Cow::Owned(id) => Some(id),
        Cow::Borrowed(_) => None,
    }
}

/// A protobuf interaction that failed validation, given back with why
/// (boxed: the error path is the rare one).
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub errors: ValidationErrors,
    pub item: Box<v1::Interaction>,
}

impl From<&Interaction> for v1::Interaction {
    fn from(i: &Interaction) -> Self {
        let entity = |e: &Entity| {
            Some(v1::Entity {
                id: e.id.clone(),
                r#type: e.kind.clone(),
            })
        };
        v1::Interaction {
            id: Some(i.id.clone()),
            r#type: i.kind.wire().to_owned(),
            timestamp: Some(timestamp(&i.timestamp)),
            origin: entity(&i.origin),
            actor: entity(&i.actor),
            target: entity(&i.target),
            value: i.value.as_ref().map(|m| v1::Money {
                amount: Some(m.amount),
                currency: m.currency.clone(),
            }),
            quantity: i.quantity,
        }
    }
}

impl v1::InteractionBatch {
    /// Each item validated, in order (a batch is answered by index).
    pub fn validate(&self) -> Vec<Result<Interaction, ValidationErrors>> {
        self.interactions
            .iter()
            .map(v1::Interaction::validate)
            .collect()
    }

    /// Each item validated, in order, its strings moved rather than copied
    /// ([`v1::Interaction::into_valid`]).
    pub fn into_valid(self) -> impl Iterator<Item = Result<Interaction, Invalid>> {
        self.interactions
            .into_iter()
            .map(v1::Interaction::into_valid)
    }
}

impl<'a> FromIterator<&'a Interaction> for v1::InteractionBatch {
    fn from_iter<I: IntoIterator<Item = &'a Interaction>>(items: I) -> Self {
        v1::InteractionBatch {
            interactions: items.into_iter().map(v1::Interaction::from).collect(),
        }
    }
}

impl From<&Event> for v1::Event {
    /// Micro's payloads are JSON objects (posted ones are checked, its own
    /// are built so); anything else has no `Struct` form and is left out.
    fn from(e: &Event) -> Self {
        v1::Event {
            id: e.id.clone(),
            r#type: e.kind.clone(),
            payload: e.payload.as_object().map(struct_of),
            received_at: Some(timestamp(&e.received_at)),
        }
    }
}

impl v1::Event {
    /// The event as Micro's JSON form has it; an absent payload is `{}`.
    pub fn to_event(&self) -> Result<Event, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.id.is_empty() {
            errors.push("id", "is required");
        }
        if self.r#type.is_empty() {
            errors.push("type", "is required");
        }
        let received_at = instant(&mut errors, "receivedAt", self.received_at.as_ref());
        let payload = self
            .payload
            .as_ref()
            .map(json_of)
            .unwrap_or_default()
            .into();
        errors.into_result(|| Event {
            id: self.id.clone(),
            kind: self.r#type.clone(),
            payload,
            received_at: received_at.unwrap_or_default(),
        })
    }
}

impl From<&Profile> for v1::Profile {
    fn from(p: &Profile) -> Self {
        let stage = |s: Option<LifeStage>| s.map(|s| s.as_str().to_owned());
        v1::Profile {
            user_id: p.user_id.clone(),
            about: Some(v1::ProfileAbout {
                gender: p.about.gender.clone(),
                spending_class: p.about.spending_class.map(u32::from),
                real_life_stage: stage(p.about.real_life_stage),
                acting_life_stage: stage(p.about.acting_life_stage),
            }),
            topics: p.topics.clone(),
            confidence: Some(v1::ProfileConfidence {
                spending_class: p.confidence.spending_class,
                acting_life_stage: p.confidence.acting_life_stage,
            }),
            interaction_count: u32::try_from(p.interaction_count).unwrap_or(u32::MAX),
            model_version: p.model_version.clone(),
            updated_at: Some(timestamp(&p.updated_at)),
        }
    }
}

impl v1::Profile {
    /// The profile as Micro's JSON form has it; vocabularies are checked.
    pub fn to_profile(&self) -> Result<Profile, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.user_id.is_empty() {
            errors.push("userId", "is required");
        }
        let about = self.about.clone().unwrap_or_default();
        let mut stage = |field: &str, s: &Option<String>| {
            let s = s.as_deref()?;
            let parsed = LifeStage::parse(s);
            if parsed.is_none() {
                errors.push(field, format!("unknown life stage {s:?}"));
            }
            parsed
        };
        let real_life_stage = stage("about.realLifeStage", &about.real_life_stage);
        let acting_life_stage = stage("about.actingLifeStage", &about.acting_life_stage);
        let spending_class = about.spending_class.and_then(|c| {
            let class = u8::try_from(c).ok().filter(|c| (1..=5).contains(c));
            if class.is_none() {
                errors.push("about.spendingClass", "must be 1 to 5");
            }
            class
        });
        let updated_at = instant(&mut errors, "updatedAt", self.updated_at.as_ref());
        let confidence = self.confidence.unwrap_or_default();
        errors.into_result(|| Profile {
            user_id: self.user_id.clone(),
            about: ProfileAbout {
                gender: about.gender,
                spending_class,
                real_life_stage,
                acting_life_stage,
            },
            topics: self.topics.clone(),
            confidence: ProfileConfidence {
                spending_class: confidence.spending_class,
                acting_life_stage: confidence.acting_life_stage,
            },
            interaction_count: u64::from(self.interaction_count),
            model_version: self.model_version.clone(),
            updated_at: updated_at.unwrap_or_default(),
        })
    }
}

impl v1::User {
    /// A registration, and when it was stored (`None` before).
    pub fn from_registration(r: &UserRegistration, created_at: Option<&DateTime<Utc>>) -> Self {
        v1::User {
            user_id: r.user_id.clone(),
            email: r.email.clone(),
            name: r.name.clone(),
            gender: r.gender.clone(),
            birth_year: r.birth_year,
            adults: r.adults,
            kids: r.kids,
            marital_status: r.marital_status.map(|m| m.as_str().to_owned()),
            income_band: r.income_band.clone(),
            created_at: created_at.map(timestamp),
        }
    }

    /// The JSON body this message stands for, for the registration's own
    /// validator (`UserRegistration::from_json`): one set of rules.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        let mut put = |key: &str, value: Option<serde_json::Value>| {
            if let Some(v) = value {
                body.insert(key.to_owned(), v);
            }
        };
        put("userId", self.user_id.clone().map(Into::into));
        put(
            "email",
            Some(self.email.clone())
                .filter(|e| !e.is_empty())
                .map(Into::into),
        );
        put("name", self.name.clone().map(Into::into));
        put("gender", self.gender.clone().map(Into::into));
        put("birthYear", self.birth_year.map(Into::into));
        put("adults", self.adults.map(Into::into));
        put("kids", self.kids.map(Into::into));
        put("maritalStatus", self.marital_status.clone().map(Into::into));
        put("incomeBand", self.income_band.clone().map(Into::into));
        put(
            "createdAt",
            self.created_at
                .as_ref()
                .and_then(|t| DateTime::from_timestamp_micros(timestamp_micros(t)))
                .map(|t| features::interaction::format_rfc3339(&t).into()),
        );
        body.into()
    }
}

/// A JSON object as a protobuf `Struct`. Numbers become doubles (what
/// `Struct` holds).
pub fn struct_of(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), value_of(v))).collect(),
    }
}

fn value_of(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(prost_types::NullValue::NullValue.into()),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => n.as_f64().map_or(
            Kind::NullValue(prost_types::NullValue::NullValue.into()),
            Kind::NumberValue,
        ),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(value_of).collect(),
        }),
        J::Object(map) => Kind::StructValue(struct_of(map)),
    };
    Value { kind: Some(kind) }
}

/// Largest whole number a double holds exactly: 2^53.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// A `Struct` as a JSON object. A whole number within ±2^53 reads back as a
/// JSON integer, so `{"interactionCount": 42}` survives the trip as it
/// left (JSON readers tell 42 from 42.0).
pub fn json_of(s: &Struct) -> serde_json::Map<String, serde_json::Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), json_value(v)))
        .collect()
}

fn json_value(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::BoolValue(b)) => J::Bool(*b),
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() <= EXACT => {
            // Whole and exact, so the casts are too.
            if *n >= 0.0 {
                J::from(*n as u64)
            } else {
                J::from(*n as i64)
            }
        }
        Some(Kind::NumberValue(n)) => J::from(*n),
        Some(Kind::StringValue(s)) => J::String(s.clone()),
        Some(Kind::ListValue(l)) => J::Array(l.values.iter().map(json_value).collect()),
        Some(Kind::StructValue(s)) => J::Object(json_of(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{v1, Message};
    use serde_json::json;

    /// SPEC §2.1's example, with microseconds and an offset.
    fn spec_interaction() -> serde_json::Value {
        serde_json::from_str(
            r#"{"type": "PURCHACE", "timestamp": "2026-11-24T17:00:00.123456+02:00",
                "origin": {"id": "store-1", "type": "pos"}, "actor": {"id": "u1", "type": "user"},
                "target": {"id": "sku-9", "type": "product"},
                "value": {"amount": 12.5, "currency": "USD"}, "quantity": 2}"#,
        )
        .expect("JSON")
    }

    fn entity(id: &str, kind: &str) -> Option<v1::Entity> {
        Some(v1::Entity {
            id: id.into(),
            r#type: kind.into(),
        })
    }

    /// `spec_interaction()` written by hand in protobuf.
    fn proto_interaction() -> v1::Interaction {
        v1::Interaction {
            id: None,
            r#type: "PURCHACE".into(),
            // 2026-11-24T15:00:00.123456789Z
            timestamp: Some(Timestamp {
                seconds: 1_795_532_400,
                nanos: 123_456_789,
            }),
            origin: entity("store-1", "pos"),
            actor: entity("u1", "user"),
            target: entity("sku-9", "product"),
            value: Some(v1::Money {
                amount: Some(12.5),
                currency: "USD".into(),
            }),
            quantity: Some(2.0),
        }
    }

    #[test]
    fn a_protobuf_interaction_is_the_json_one_with_the_same_derived_id() {
        let from_json = Interaction::from_json(&spec_interaction()).expect("valid JSON");
        let from_proto = proto_interaction().validate().expect("valid protobuf");
        // Nanoseconds past the microsecond are dropped, as from RFC 3339 text.
        assert_eq!(from_proto, from_json);
        assert!(from_proto.id.starts_with("ix_"));
        assert_eq!(from_proto.id, features::interaction::content_id(&from_json));
        let mut given = proto_interaction();
        given.id = Some("given-1".into());
        assert_eq!(given.validate().expect("valid").id, "given-1");
    }

    /// Every bad item a protobuf message can carry is refused with the
    /// field names and messages of the same item in JSON.
    #[test]
    fn bad_items_get_the_json_errors() {
        let cases: Vec<(serde_json::Value, v1::Interaction)> = vec![
            (json!({}), v1::Interaction::default()),
            (
                json!({"type": "BUY", "timestamp": "1960-01-01T00:00:00Z",
                       "origin": {"id": "  ", "type": "pos"}, "actor": {"type": "user"},
                       "target": {"id": "t", "type": "p"},
                       "value": {"amount": -1, "currency": "usd"}, "quantity": 2e9}),
                v1::Interaction {
                    r#type: "BUY".into(),
                    timestamp: Some(Timestamp {
                        seconds: -315_619_200,
                        nanos: 0,
                    }),
                    origin: entity("  ", "pos"),
                    actor: entity("", "user"),
                    target: entity("t", "p"),
                    value: Some(v1::Money {
                        amount: Some(-1.0),
                        currency: "usd".into(),
                    }),
                    quantity: Some(2e9),
                    ..Default::default()
                },
            ),
            (
                json!({"id": "", "type": "VIEW", "timestamp": "2026-01-01T00:00:00Z",
                       "origin": {"id": "o", "type": "shop"}, "actor": {"id": "a", "type": "user"},
                       "target": {"id": "t", "type": "p"}, "value": {"currency": "EUR"}}),
                v1::Interaction {
                    id: Some(String::new()),
                    value: Some(v1::Money {
                        amount: None,
                        currency: "EUR".into(),
                    }),
                    ..v1::Interaction::from(
                        &Interaction::from_json(&spec_interaction()).expect("valid"),
                    )
                },
            ),
            (
                json!({"type": "VIEW", "timestamp": "2026-01-01T00:00:00Z", "value": {}}),
                v1::Interaction {
                    r#type: "VIEW".into(),
                    timestamp: Some(Timestamp::default()),
                    value: Some(v1::Money::default()),
                    ..Default::default()
                },
            ),
        ];
        for (json, proto) in cases {
            let want = Interaction::from_json(&json).expect_err("invalid JSON");
            let got = proto.validate().expect_err("invalid protobuf");
            assert_eq!(got, want, "{json}");
        }
    }

    /// Moving the strings out gives what copying them gives, valid or not.
    #[test]
    fn into_valid_is_validate_without_the_copies() {
        let mut items = vec![proto_interaction(), v1::Interaction::default()];
        let mut given = proto_interaction();
        given.id = Some("given-1".into());
        given.value = None;
        items.push(given);
        let mut bad = proto_interaction();
        bad.value = Some(v1::Money::default());
        items.push(bad);
        let mut bad = proto_interaction();
        bad.actor = None;
        bad.quantity = Some(2e9);
        items.push(bad);
        for item in items {
            let by_ref = item.validate();
            match item.clone().into_valid() {
                Ok(i) => assert_eq!(Ok(i), by_ref),
                Err(invalid) => {
                    assert_eq!(Err(invalid.errors), by_ref);
                    assert_eq!(*invalid.item, item, "given back as it was");
                }
            }
        }
    }

    #[test]
    fn timestamps_out_of_range_are_refused_not_wrapped() {
        for seconds in [i64::MAX, i64::MIN, 253_402_300_800] {
            let mut i = proto_interaction();
            i.timestamp = Some(Timestamp { seconds, nanos: 0 });
            let errors = i.validate().expect_err("out of range");
            assert_eq!(errors.errors()[0].field, "timestamp", "{errors}");
        }
        // Nanos past a second are carried into the seconds (normalised).
        let mut i = proto_interaction();
        i.timestamp = Some(Timestamp {
            seconds: 1_764_000_000,
            nanos: 1_500_000_000,
        });
        assert_eq!(
            i.validate().expect("valid").timestamp_micros(),
            1_764_000_001_500_000
        );
    }

    #[test]
    fn batches_round_trip_through_bytes() {
        let mut v = spec_interaction();
        v["id"] = json!("x-1");
        let a = Interaction::from_json(&v).expect("valid");
        v["type"] = json!("INQUIRY");
        v["value"] = json!(null);
        v["id"] = json!("x-2");
        let b = Interaction::from_json(&v).expect("valid");
        let batch: v1::InteractionBatch = [&a, &b].into_iter().collect();
        let bytes = batch.encode_to_vec();
        let back = v1::InteractionBatch::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(back, batch);
        let items: Vec<Interaction> = back
            .validate()
            .into_iter()
            .map(|r| r.expect("valid"))
            .collect();
        assert_eq!(items, vec![a, b]);
        assert_eq!(
            items[1].kind.wire(),
            "INQUERY",
            "aliases come back as wire values"
        );
    }

    fn event() -> Event {
        Event {
            id: "ev_1".into(),
            kind: "user.registered".into(),
            payload: json!({
                "userId": "u1", "kids": 2, "big": -9_007_199_254_740_992_i64,
                "share": 0.25, "ok": true, "none": null,
                "tags": ["a", 1, {"deep": [false]}], "nested": {"x": "y"}
            }),
            received_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("instant"),
        }
    }

    #[test]
    fn events_round_trip_with_their_payload() {
        let e = event();
        let bytes = v1::Event::from(&e).encode_to_vec();
        let back = v1::Event::decode(bytes.as_slice())
            .expect("decodes")
            .to_event()
            .expect("valid");
        // Integers stay integers: consumers read `kids` with as_u64.
        assert_eq!(back, e);
        assert_eq!(back.payload["kids"].as_u64(), Some(2));
        let empty = v1::Event {
            payload: None,
            ..v1::Event::from(&e)
        };
        assert_eq!(empty.to_event().expect("valid").payload, json!({}));
        let errors = v1::Event::default().to_event().expect_err("empty");
        for field in ["id", "type", "receivedAt"] {
            assert!(errors.has_field(field), "{errors}");
        }
    }

    fn profile() -> Profile {
        Profile {
            user_id: "u1".into(),
            about: ProfileAbout {
                gender: Some("female".into()),
                spending_class: Some(3),
                real_life_stage: Some(LifeStage::YoungFamily),
                acting_life_stage: Some(LifeStage::YoungAdult),
            },
            topics: vec!["outdoor".into(), "baby".into()],
            confidence: ProfileConfidence {
                spending_class: Some(0.71),
                acting_life_stage: Some(0.64),
            },
            interaction_count: 42,
            model_version: Some("profile-2026-11-24T17-00-00Z".into()),
            updated_at: DateTime::from_timestamp(1_764_000_000, 0).expect("instant"),
        }
    }

    #[test]
    fn profiles_round_trip_and_vocabularies_are_checked() {
        let p = profile();
        let bytes = v1::Profile::from(&p).encode_to_vec();
        let back = v1::Profile::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(back.to_profile().expect("valid"), p);
        let declared = Profile::declared("u2".into(), None, None, p.updated_at);
        assert_eq!(
            v1::Profile::from(&declared).to_profile().expect("valid"),
            declared
        );
        let mut bad = v1::Profile::from(&p);
        if let Some(about) = bad.about.as_mut() {
            about.acting_life_stage = Some("teen".into());
            about.spending_class = Some(6);
        }
        let errors = bad.to_profile().expect_err("invalid");
        assert!(errors.has_field("about.actingLifeStage"), "{errors}");
        assert!(errors.has_field("about.spendingClass"), "{errors}");
    }

    fn registration() -> UserRegistration {
        UserRegistration::from_json(
            &json!({"userId": "u1", "email": "ada@example.com", "name": "Ada",
                    "gender": "female", "birthYear": 1988, "adults": 2, "kids": 1,
                    "maritalStatus": "married", "incomeBand": "high"}),
            2026,
        )
        .expect("valid")
    }

    #[test]
    fn users_are_validated_by_the_registration_rules() {
        let r = registration();
        let user = v1::User::from_registration(&r, None);
        let bytes = user.encode_to_vec();
        let back = v1::User::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(
            UserRegistration::from_json(&back.to_json(), 2026).expect("valid"),
            r
        );
        let bad = v1::User {
            email: "not an address".into(),
            marital_status: Some("complicated".into()),
            ..user
        };
        let errors = UserRegistration::from_json(&bad.to_json(), 2026).expect_err("invalid");
        assert!(errors.has_field("email") && errors.has_field("maritalStatus"));
        let errors =
            UserRegistration::from_json(&v1::User::default().to_json(), 2026).expect_err("empty");
        assert_eq!(errors.errors()[0].field, "email");
        assert_eq!(errors.errors()[0].message, "is required");
    }

    /// The design rule of the schema: proto3's canonical JSON mapping of
    /// each message is the JSON Micro speaks, both ways. Read by
    /// reflection, from the compiled schema itself.
    mod json_mapping {
        use super::*;
        use prost_reflect::{DescriptorPool, DynamicMessage};

        fn pool() -> DescriptorPool {
            DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET).expect("descriptor set")
        }

        /// Micro's JSON as proto3 JSON writes it: no nulls (unset fields are
        /// left out) and one number type.
        fn canonical(v: serde_json::Value) -> serde_json::Value {
            use serde_json::Value as J;
            match v {
                J::Object(map) => J::Object(
                    map.into_iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| (k, canonical(v)))
                        .collect(),
                ),
                J::Array(items) => J::Array(items.into_iter().map(canonical).collect()),
                J::Number(n) => n.as_f64().map_or(J::Null, J::from),
                other => other,
            }
        }

        /// The proto3 JSON of an encoded message.
        fn proto3_json(name: &str, message: &impl Message) -> serde_json::Value {
            let desc = pool()
                .get_message_by_name(&format!("micro.v1.{name}"))
                .expect("message");
            let dynamic =
                DynamicMessage::decode(desc, message.encode_to_vec().as_slice()).expect("decodes");
            serde_json::to_value(&dynamic).expect("serialises")
        }

        /// Micro's JSON read as proto3 JSON, encoded.
        fn from_proto3_json(name: &str, json: &serde_json::Value) -> Vec<u8> {
            let desc = pool()
                .get_message_by_name(&format!("micro.v1.{name}"))
                .expect("message");
            DynamicMessage::deserialize(desc, json.clone())
                .expect("Micro's JSON is proto3 JSON")
                .encode_to_vec()
        }

        fn assert_same(name: &str, micro: serde_json::Value, message: &impl Message) {
            assert_eq!(
                canonical(proto3_json(name, message)),
                canonical(micro),
                "{name}"
            );
        }

        #[test]
        fn interactions() {
            let i = Interaction::from_json(&spec_interaction()).expect("valid");
            let micro = serde_json::to_value(&i).expect("serialise");
            assert_same("Interaction", micro.clone(), &v1::Interaction::from(&i));
            // And the other way: the SPEC's JSON as proto3 JSON is the same
            // interaction, derived id and all.
            let mut spec = spec_interaction();
            let bytes = from_proto3_json("Interaction", &spec);
            let read = v1::Interaction::decode(bytes.as_slice()).expect("decodes");
            assert_eq!(read.validate().expect("valid"), i);
            spec["value"] = json!({"amount": 0, "currency": "USD"});
            let bytes = from_proto3_json("Interaction", &spec);
            let read = v1::Interaction::decode(bytes.as_slice()).expect("decodes");
            assert_eq!(
                read.value.and_then(|v| v.amount),
                Some(0.0),
                "0 is an amount"
            );
            let batch = json!({"interactions": [micro]});
            let bytes = from_proto3_json("InteractionBatch", &batch);
            let read = v1::InteractionBatch::decode(bytes.as_slice()).expect("decodes");
            assert_eq!(read.validate(), vec![Ok(i)]);
        }

        #[test]
        fn events() {
            let e = event();
            assert_same(
                "Event",
                serde_json::to_value(&e).expect("serialise"),
                &v1::Event::from(&e),
            );
            let bytes = from_proto3_json("Event", &serde_json::to_value(&e).expect("json"));
            let read = v1::Event::decode(bytes.as_slice()).expect("decodes");
            assert_eq!(read.to_event().expect("valid"), e);
        }

        #[test]
        fn profiles() {
            let p = profile();
            let micro = serde_json::to_value(&p).expect("serialise");
            assert_same("Profile", micro.clone(), &v1::Profile::from(&p));
            let read = v1::Profile::decode(from_proto3_json("Profile", &micro).as_slice())
                .expect("decodes");
            assert_eq!(read.to_profile().expect("valid"), p);
        }

        #[test]
        fn users() {
            let r = registration();
            let created = DateTime::from_timestamp_micros(1_764_000_000_250_000).expect("instant");
            let mut micro = serde_json::to_value(&r).expect("serialise");
            micro["createdAt"] = json!(features::interaction::format_rfc3339(&created));
            let user = v1::User::from_registration(&r, Some(&created));
            assert_same("User", micro.clone(), &user);
            assert_eq!(user.to_json(), micro);
        }
    }
}
