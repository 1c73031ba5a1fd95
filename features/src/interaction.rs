//! The interaction contract (SPEC §2.1): what streams in from shops, partner
//! sites and devices. One validation path serves JSON bodies, bus messages and
//! rows of batch files, so every entry point accepts exactly the same things.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::validation::{check_text, json_f64, json_id, json_str, ValidationErrors};

/// Longest accepted id or type string, in characters.
pub const MAX_ID_LEN: usize = 256;

/// Interaction kinds. The seed's wire spellings (`PURCHACE`, `INQUERY`) are
/// the contract and what Micro emits; the correct spellings are accepted as
/// aliases on input.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum InteractionType {
    #[serde(rename = "PURCHACE", alias = "PURCHASE")]
    Purchase,
    #[serde(rename = "SAVE")]
    Save,
    #[serde(rename = "INQUERY", alias = "INQUIRY")]
    Inquiry,
    #[serde(rename = "VIEW")]
    View,
    #[serde(rename = "SHARE")]
    Share,
}

impl InteractionType {
    /// All kinds, in the order their features are laid out.
    pub const ALL: [InteractionType; 5] = [
        InteractionType::Purchase,
        InteractionType::Save,
        InteractionType::Inquiry,
        InteractionType::View,
        InteractionType::Share,
    ];

    /// The wire value Micro emits.
    pub fn wire(self) -> &'static str {
        match self {
            InteractionType::Purchase => "PURCHACE",
            InteractionType::Save => "SAVE",
            InteractionType::Inquiry => "INQUERY",
            InteractionType::View => "VIEW",
            InteractionType::Share => "SHARE",
        }
    }

    /// Parses a wire value or alias; matching is case-sensitive.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PURCHACE" | "PURCHASE" => InteractionType::Purchase,
            "SAVE" => InteractionType::Save,
            "INQUERY" | "INQUIRY" => InteractionType::Inquiry,
            "VIEW" => InteractionType::View,
            "SHARE" => InteractionType::Share,
            _ => return None,
        })
    }

    /// Position in [`InteractionType::ALL`]; also the integer code used in
    /// columnar feature computation.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Option<Self> {
        Self::ALL.get(i).copied()
    }
}

impl fmt::Display for InteractionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire())
    }
}

/// Something with an id and a type: the origin, actor or target.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entity {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::validation::id_schema))]
    pub id: String,
    #[serde(rename = "type")]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = r"[^\s\u0085]|\uFEFF")
    )]
    pub kind: String,
}

/// A monetary amount, as point-of-sale data reports it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Money {
    pub amount: f64,
    /// ISO 4217.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Z]{3}$"))]
    pub currency: String,
}

/// A validated interaction. `id` is always set: given by the sender, or
/// derived from the content (see [`content_id`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// Optional on input: derived from the content when absent.
    #[cfg_attr(feature = "openapi", schema(required = false, schema_with = crate::validation::optional_id_schema))]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: InteractionType,
    #[serde(with = "rfc3339_micros")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime, pattern = r"^(19[7-9][0-9]|[2-9][0-9]{3})-"))]
    pub timestamp: DateTime<Utc>,
    pub origin: Entity,
    pub actor: Entity,
    pub target: Entity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = -1e9, maximum = 1e9))]
    pub quantity: Option<f64>,
}

impl Interaction {
    /// Validates a JSON value (one element of a body, one bus message, one
    /// NDJSON line), reporting every problem with its field path.
    pub fn from_json(value: &serde_json::Value) -> Result<Interaction, ValidationErrors> {
        RawInteraction::from_json(value)?.validate()
    }

    /// Validates the JSON text of one interaction, as [`Interaction::from_json`]
    /// does its parsed value, without building the value first when the text
    /// has the usual shape (every field of its JSON type, no key twice).
    /// `None` when it does not: the caller parses it into a value, which then
    /// reports every problem by field (or that the text is not JSON).
    pub fn from_json_text(text: &str) -> Option<Result<Interaction, ValidationErrors>> {
        fn borrowed(s: Option<&str>) -> Option<Cow<'_, str>> {
            s.map(Cow::Borrowed)
        }
        let MapOnly(wire) = serde_json::from_str::<MapOnly<Wire<'_>>>(text).ok()?;
        fn entity<'a>(
            e: Option<MapOnly<WireEntity<'a>>>,
        ) -> (Option<Cow<'a, str>>, Option<Cow<'a, str>>) {
            e.map_or((None, None), |MapOnly(e)| {
                (borrowed(e.id), borrowed(e.kind))
            })
        }
        let (origin_id, origin_type) = entity(wire.origin);
        let (actor_id, actor_type) = entity(wire.actor);
        let (target_id, target_type) = entity(wire.target);
        let value_given = wire.value.is_some();
        let (amount, currency) = wire
            .value
            .map_or((None, None), |MapOnly(v)| (v.amount, borrowed(v.currency)));
        if value_given && amount.is_none() && currency.is_none() {
            // `"value": {}`: the value path names the problem.
            return None;
        }
        let raw = RawInteraction {
            id: borrowed(wire.id),
            kind: borrowed(wire.kind),
            timestamp: borrowed(wire.timestamp).map_or(RawTimestamp::Missing, RawTimestamp::Text),
            origin_id,
            origin_type,
            actor_id,
            actor_type,
            target_id,
            target_type,
            amount,
            currency,
            quantity: wire.quantity,
        };
        Some(raw.validate())
    }

    /// Microseconds since the Unix epoch: the time unit of feature code.
    pub fn timestamp_micros(&self) -> i64 {
        self.timestamp.timestamp_micros()
    }

    /// The user this interaction belongs to (the actor).
    pub fn user_id(&self) -> &str {
        &self.actor.id
    }
}

/// SPEC §2.1's JSON shape with every field of its expected JSON type, read
/// straight from text by [`Interaction::from_json_text`]: ingest spent more
/// time building `serde_json::Value` trees (maps, owned strings) than
/// validating them. Strings are borrowed from the text, so one with an
/// escape fails here too. Anything that fails is read the general way
/// ([`RawInteraction::from_json`]); unknown fields are ignored by both.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(default)]
    id: Option<&'a str>,
    #[serde(default, rename = "type")]
    kind: Option<&'a str>,
    #[serde(default)]
    timestamp: Option<&'a str>,
    #[serde(borrow, default)]
    origin: Option<MapOnly<WireEntity<'a>>>,
    #[serde(borrow, default)]
    actor: Option<MapOnly<WireEntity<'a>>>,
    #[serde(borrow, default)]
    target: Option<MapOnly<WireEntity<'a>>>,
    #[serde(borrow, default)]
    value: Option<MapOnly<WireMoney<'a>>>,
    #[serde(default)]
    quantity: Option<f64>,
}

#[derive(Deserialize)]
struct WireEntity<'a> {
    #[serde(default)]
    id: Option<&'a str>,
    #[serde(default, rename = "type")]
    kind: Option<&'a str>,
}

#[derive(Deserialize)]
struct WireMoney<'a> {
    #[serde(default)]
    amount: Option<f64>,
    #[serde(default)]
    currency: Option<&'a str>,
}

/// A struct read from a JSON object only. Serde's derived structs also
/// accept an array of their fields in order, which the value path rejects
/// (`"actor": ["u1"]` is not an actor).
struct MapOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Object(std::marker::PhantomData))
            .map(MapOnly)
    }
}

/// How a timestamp arrived: text to be parsed, or an instant from a typed
/// column.
#[derive(Clone, Debug, PartialEq)]
pub enum RawTimestamp<'a> {
    Missing,
    Text(Cow<'a, str>),
    Micros(i64),
}

/// An interaction as received, before validation: every field optional and
/// loosely typed, so that validation can report all problems at once. Borrows
/// from its source where it can (batch files are validated row by row).
#[derive(Clone, Debug, PartialEq)]
pub struct RawInteraction<'a> {
    pub id: Option<Cow<'a, str>>,
    pub kind: Option<Cow<'a, str>>,
    pub timestamp: RawTimestamp<'a>,
    pub origin_id: Option<Cow<'a, str>>,
    pub origin_type: Option<Cow<'a, str>>,
    pub actor_id: Option<Cow<'a, str>>,
    pub actor_type: Option<Cow<'a, str>>,
    pub target_id: Option<Cow<'a, str>>,
    pub target_type: Option<Cow<'a, str>>,
    pub amount: Option<f64>,
    pub currency: Option<Cow<'a, str>>,
    pub quantity: Option<f64>,
}

/// What validation settles about a raw interaction: its id (given or derived),
/// kind and instant. The other fields are then known to be present and valid.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedInteraction<'a> {
    pub id: Cow<'a, str>,
    pub kind: InteractionType,
    pub timestamp_micros: i64,
}

/// Largest accepted quantity, either way: beyond it a quantity is a broken
/// field (a barcode in the wrong column), not goods.
const MAX_QUANTITY: f64 = 1e9;

/// Earliest accepted timestamp (1970-01-01): anything before is a broken clock.
const MIN_MICROS: i64 = 0;
/// Latest accepted timestamp (year 9999).
const MAX_MICROS: i64 = 253_402_300_799_000_000;

impl<'a> RawInteraction<'a> {
    /// Reads the JSON shape of SPEC §2.1, collecting type errors.
    pub fn from_json(value: &'a serde_json::Value) -> Result<RawInteraction<'a>, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let Some(obj) = value.as_object() else {
            errors.push("$", "must be a JSON object");
            return Err(errors);
        };
        let mut entity = |name: &str| -> (Option<Cow<'a, str>>, Option<Cow<'a, str>>) {
            match obj.get(name) {
                None | Some(serde_json::Value::Null) => (None, None),
                Some(serde_json::Value::Object(e)) => (
                    json_id(&mut errors, e, "id", &format!("{name}.id")),
                    json_str(&mut errors, e, "type", &format!("{name}.type")).map(Cow::Borrowed),
                ),
                Some(_) => {
                    errors.push(name, "must be an object with id and type");
                    (Some(Cow::Borrowed("")), Some(Cow::Borrowed("")))
                }
            }
        };
        let (origin_id, origin_type) = entity("origin");
        let (actor_id, actor_type) = entity("actor");
        let (target_id, target_type) = entity("target");
        let (amount, currency) = match obj.get("value") {
            None | Some(serde_json::Value::Null) => (None, None),
            Some(serde_json::Value::Object(v)) => {
                let amount = json_f64(&mut errors, v, "amount", "value.amount");
                let currency =
                    json_str(&mut errors, v, "currency", "value.currency").map(Cow::Borrowed);
                if amount.is_none()
                    && currency.is_none()
                    && !errors.has_field("value.amount")
                    && !errors.has_field("value.currency")
                {
                    errors.push("value", "must have amount and currency, or be null");
                }
                (amount, currency)
            }
            Some(_) => {
                errors.push("value", "must be an object with amount and currency");
                (None, None)
            }
        };
        let timestamp = match obj.get("timestamp") {
            None | Some(serde_json::Value::Null) => RawTimestamp::Missing,
            Some(serde_json::Value::String(s)) => RawTimestamp::Text(Cow::Borrowed(s)),
            Some(_) => {
                errors.push("timestamp", "must be an RFC 3339 string");
                RawTimestamp::Text(Cow::Borrowed(""))
            }
        };
        let raw = RawInteraction {
            id: json_id(&mut errors, obj, "id", "id"),
            kind: json_str(&mut errors, obj, "type", "type").map(Cow::Borrowed),
            timestamp,
            origin_id,
            origin_type,
            actor_id,
            actor_type,
            target_id,
            target_type,
            amount,
            currency,
            quantity: json_f64(&mut errors, obj, "quantity", "quantity"),
        };
        errors.into_result(|| raw)
    }

    /// Checks every rule without copying: the id (derived from the content
    /// when absent), kind and instant of a valid interaction, or every problem.
    pub fn check(&self) -> Result<CheckedInteraction<'_>, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(id) = &self.id {
            if id.trim().is_empty() {
                errors.push("id", "must not be empty when given");
            } else if crate::validation::longer_than(id, MAX_ID_LEN) {
                errors.push("id", format!("must be at most {MAX_ID_LEN} characters"));
            }
        }
        let kind = match self.kind.as_deref() {
            None => {
                errors.push("type", "is required");
                None
            }
            Some(k) => {
                let parsed = InteractionType::parse(k);
                if parsed.is_none() {
                    errors.push(
                        "type",
                        format!(
                            "unknown value {k:?} (expected one of PURCHACE, SAVE, INQUERY, VIEW, SHARE)"
                        ),
                    );
                }
                parsed
            }
        };
        let timestamp = match &self.timestamp {
            RawTimestamp::Missing => {
                errors.push("timestamp", "is required");
                None
            }
            RawTimestamp::Text(t) => match DateTime::parse_from_rfc3339(t) {
                Ok(dt) => Some(dt.timestamp_micros()),
                Err(_) => {
                    errors.push("timestamp", format!("not RFC 3339: {t:?}"));
                    None
                }
            },
            RawTimestamp::Micros(m) => Some(*m),
        };
        if let Some(m) = timestamp {
            if !(MIN_MICROS..=MAX_MICROS).contains(&m) {
                errors.push("timestamp", "must be between 1970 and 9999");
            }
        }
        for (field, value) in [
            ("origin.id", &self.origin_id),
            ("origin.type", &self.origin_type),
            ("actor.id", &self.actor_id),
            ("actor.type", &self.actor_type),
            ("target.id", &self.target_id),
            ("target.type", &self.target_type),
        ] {
            check_text(&mut errors, field, value.as_deref(), MAX_ID_LEN);
        }
        match (self.amount, &self.currency) {
            (None, None) => {}
            (Some(a), c) => {
                // Negative amounts are refunds (see `definition`).
                if !a.is_finite() {
                    errors.push("value.amount", "must be a finite number");
                }
                match c {
                    None => errors.push("value.currency", "is required with an amount"),
                    Some(c) if !is_currency_code(c) => errors.push(
                        "value.currency",
                        format!("must be a 3-letter ISO 4217 code, got {c:?}"),
                    ),
                    Some(_) => {}
                }
            }
            (None, Some(_)) => errors.push("value.amount", "is required with a currency"),
        }
        // Negative quantities are returns and zero ones void lines (see
        // `definition`): real point-of-sale feeds have both.
        if let Some(q) = self.quantity {
            if !q.is_finite() || q.abs() > MAX_QUANTITY {
                errors.push(
                    "quantity",
                    format!(
                        "must be a finite number between -{MAX_QUANTITY:e} and {MAX_QUANTITY:e}"
                    ),
                );
            }
        }
        let (Some(kind), Some(timestamp_micros)) = (kind, timestamp) else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        fn text<'s>(v: &'s Option<Cow<'_, str>>) -> &'s str {
            v.as_deref().unwrap_or_default()
        }
        let id = match &self.id {
            Some(id) => Cow::Borrowed(id.as_ref()),
            None => Cow::Owned(content_id_of(ContentParts {
                kind,
                timestamp_micros,
                entities: [
                    text(&self.origin_id),
                    text(&self.origin_type),
                    text(&self.actor_id),
                    text(&self.actor_type),
                    text(&self.target_id),
                    text(&self.target_type),
                ],
                value: self.amount.map(|a| (a, text(&self.currency))),
                quantity: self.quantity,
            })),
        };
        Ok(CheckedInteraction {
            id,
            kind,
            timestamp_micros,
        })
    }

    /// Checks every rule and returns the owned interaction, its id filled in.
    pub fn validate(&self) -> Result<Interaction, ValidationErrors> {
        let checked = self.check()?;
        let owned = |v: &Option<Cow<'_, str>>| v.as_deref().unwrap_or_default().to_owned();
        Ok(Interaction {
            id: checked.id.into_owned(),
            kind: checked.kind,
            timestamp: DateTime::from_timestamp_micros(checked.timestamp_micros)
                .unwrap_or_default(),
            origin: Entity {
                id: owned(&self.origin_id),
                kind: owned(&self.origin_type),
            },
            actor: Entity {
                id: owned(&self.actor_id),
                kind: owned(&self.actor_type),
            },
            target: Entity {
                id: owned(&self.target_id),
                kind: owned(&self.target_type),
            },
            value: self.amount.map(|amount| Money {
                amount,
                currency: owned(&self.currency),
            }),
            quantity: self.quantity,
        })
    }
}

fn is_currency_code(c: &str) -> bool {
    c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())
}

/// The content an id is derived from.
struct ContentParts<'a> {
    kind: InteractionType,
    timestamp_micros: i64,
    /// origin id/type, actor id/type, target id/type
    entities: [&'a str; 6],
    value: Option<(f64, &'a str)>,
    quantity: Option<f64>,
}

/// The deterministic id of an interaction sent without one: a SHA-256 over
/// its canonical content (kind, instant to the microsecond, entities, value,
/// quantity), so a retried delivery of the same interaction gets the same id
/// and is stored once, whatever the sender's field order or time zone.
pub fn content_id(i: &Interaction) -> String {
    content_id_of(ContentParts {
        kind: i.kind,
        timestamp_micros: i.timestamp_micros(),
        entities: [
            &i.origin.id,
            &i.origin.kind,
            &i.actor.id,
            &i.actor.kind,
            &i.target.id,
            &i.target.kind,
        ],
        value: i.value.as_ref().map(|v| (v.amount, v.currency.as_str())),
        quantity: i.quantity,
    })
}

fn content_id_of(parts: ContentParts<'_>) -> String {
    let mut h = Sha256::new();
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    field(parts.kind.wire());
    field(&parts.timestamp_micros.to_string());
    for e in parts.entities {
        field(e);
    }
    let (amount, currency) = match parts.value {
        Some((a, c)) => (format!("{a:?}"), c),
        None => (String::new(), ""),
    };
    field(&amount);
    field(currency);
    field(&parts.quantity.map(|q| format!("{q:?}")).unwrap_or_default());
    let digest = h.finalize();
    format!("ix_{}", hex::encode(&digest[..16]))
}

/// RFC 3339 in UTC with microseconds when present: the one way Micro writes
/// instants.
pub fn format_rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Serde helpers for RFC 3339 instants with microsecond precision.
pub mod rfc3339_micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = DateTime::parse_from_rfc3339(&text).map_err(serde::de::Error::custom)?;
        DateTime::from_timestamp_micros(parsed.timestamp_micros())
            .ok_or_else(|| serde::de::Error::custom("timestamp out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> serde_json::Value {
        json!({
            "type": "PURCHACE",
            "timestamp": "2026-11-24T17:00:00+02:00",
            "origin": {"id": "store-1", "type": "pos"},
            "actor": {"id": "u1", "type": "user"},
            "target": {"id": "sku-9", "type": "product"},
            "value": {"amount": 12.5, "currency": "USD"},
            "quantity": 2
        })
    }

    /// Reading text straight into the wire shape answers exactly as the
    /// general path over a parsed value, whenever it answers at all; and it
    /// does answer for the usual shape.
    mod text_reading {
        use super::*;
        use proptest::prelude::*;

        /// A value for `key`: mostly of its JSON type (valid or not by the
        /// rules), sometimes of another type.
        fn field_value(key: &'static str) -> BoxedStrategy<Option<serde_json::Value>> {
            let fitting: Vec<serde_json::Value> = match key {
                "origin" | "actor" | "target" => vec![
                    json!({"id": "a", "type": "user"}),
                    json!({"id": null, "type": "user"}),
                    json!({"type": "site"}),
                    json!({"id": "", "type": "b", "extra": 1}),
                    json!({"id": 7, "type": "user"}),
                ],
                "value" => vec![
                    json!({"amount": 3, "currency": "EUR"}),
                    json!({"amount": 3.25, "currency": "eur"}),
                    json!({"amount": -1, "currency": "USD"}),
                    json!({"currency": "EUR"}),
                    json!({"amount": "3", "currency": "EUR"}),
                ],
                "quantity" => vec![json!(2), json!(1.5), json!(-3), json!(0)],
                _ => vec![
                    json!("VIEW"),
                    json!("SHARE"),
                    json!("2026-11-24T17:00:00Z"),
                    json!("not a time"),
                    json!(""),
                    json!("quote \" inside"),
                ],
            };
            let other = vec![json!(42), json!("x"), json!(["x"]), json!({"id": "a"})];
            prop_oneof![
                24 => Just(None),
                2 => Just(Some(serde_json::Value::Null)),
                8 => proptest::sample::select(fitting).prop_map(Some),
                1 => proptest::sample::select(other).prop_map(Some),
            ]
            .boxed()
        }

        const KEYS: [&str; 9] = [
            "id",
            "type",
            "timestamp",
            "origin",
            "actor",
            "target",
            "value",
            "quantity",
            "extra",
        ];

        fn overrides() -> impl Strategy<Value = Vec<Option<serde_json::Value>>> {
            KEYS.iter().map(|k| field_value(k)).collect::<Vec<_>>()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]
            #[test]
            fn agrees_with_the_value_path(overrides in overrides(), twice in any::<bool>()) {
                let mut v = valid();
                for (key, o) in KEYS.iter().zip(overrides) {
                    if let Some(o) = o {
                        v[*key] = o;
                    }
                }
                let mut text = v.to_string();
                if twice {
                    // A key given twice: the value path keeps the last one.
                    text = text.replacen('{', r#"{"type": "SHARE", "#, 1);
                }
                let general = serde_json::from_str::<serde_json::Value>(&text)
                    .map(|value| Interaction::from_json(&value));
                if let Some(direct) = Interaction::from_json_text(&text) {
                    let general = general.expect("parsed by both");
                    prop_assert_eq!(format!("{direct:?}"), format!("{general:?}"));
                }
            }
        }

        #[test]
        fn the_usual_shape_is_read_directly() {
            let text = valid().to_string();
            let direct = Interaction::from_json_text(&text).expect("read directly");
            assert_eq!(
                direct.expect("valid"),
                Interaction::from_json(&valid()).expect("valid")
            );
            let mut missing = valid();
            missing["type"] = serde_json::Value::Null;
            let direct = Interaction::from_json_text(&missing.to_string()).expect("read directly");
            assert_eq!(direct.expect_err("invalid").errors()[0].field, "type");
            assert!(
                Interaction::from_json_text(r#"{"id": 5}"#).is_none(),
                "numeric id: value path"
            );
            assert!(Interaction::from_json_text("not json").is_none());
        }
    }

    /// What the OpenAPI document says of a value: an empty `value` is not
    /// one (amount and currency, or null), and a whole number written
    /// `7.0` is the id 7, on both reading paths.
    #[test]
    fn an_empty_value_is_refused_and_whole_floats_are_ids() {
        let mut v = valid();
        v["value"] = json!({});
        let text = v.to_string();
        for read in [
            Interaction::from_json(&v),
            Interaction::from_json_text(&text).unwrap_or_else(|| Interaction::from_json(&v)),
        ] {
            let errors = read.expect_err("value {} is refused");
            assert_eq!(errors.errors()[0].field, "value", "{errors}");
        }
        v["value"] = serde_json::Value::Null;
        assert!(Interaction::from_json(&v).is_ok(), "null is no value");
        v["actor"]["id"] = json!(7.0);
        assert_eq!(Interaction::from_json(&v).unwrap().user_id(), "7");
        v["actor"]["id"] = json!(7.5);
        let errors = Interaction::from_json(&v).expect_err("7.5 is no id");
        assert_eq!(errors.errors()[0].field, "actor.id");
    }

    #[test]
    fn accepts_the_seed_shape_and_normalises_to_utc() {
        let i = Interaction::from_json(&valid()).expect("valid");
        assert_eq!(i.kind, InteractionType::Purchase);
        assert_eq!(format_rfc3339(&i.timestamp), "2026-11-24T15:00:00Z");
        assert_eq!(i.user_id(), "u1");
        assert_eq!(i.quantity, Some(2.0));
        assert!(i.id.starts_with("ix_"));
    }

    #[test]
    fn emits_seed_wire_values_and_accepts_correct_spellings_as_aliases() {
        for (input, kind, wire) in [
            ("PURCHACE", InteractionType::Purchase, "PURCHACE"),
            ("PURCHASE", InteractionType::Purchase, "PURCHACE"),
            ("INQUERY", InteractionType::Inquiry, "INQUERY"),
            ("INQUIRY", InteractionType::Inquiry, "INQUERY"),
            ("VIEW", InteractionType::View, "VIEW"),
        ] {
            let mut v = valid();
            v["type"] = json!(input);
            let i = Interaction::from_json(&v).expect("valid");
            assert_eq!(i.kind, kind);
            let out = serde_json::to_value(&i).expect("serialise");
            assert_eq!(out["type"], json!(wire));
        }
    }

    #[test]
    fn type_matching_is_case_sensitive_and_unknown_values_are_named() {
        for bad in ["purchase", "BUY", "View"] {
            let mut v = valid();
            v["type"] = json!(bad);
            let err = Interaction::from_json(&v).expect_err("invalid");
            assert_eq!(err.errors().len(), 1);
            assert_eq!(err.errors()[0].field, "type");
            assert!(err.errors()[0].message.contains(&format!("{bad:?}")));
        }
    }

    #[test]
    fn reports_every_problem_with_its_field_path() {
        let v = json!({
            "type": "BUY",
            "timestamp": "yesterday",
            "origin": {"id": "", "type": "pos"},
            "actor": {"type": "user"},
            "target": {"id": "  ", "type": 7},
            "value": {"amount": -1, "currency": "usd"},
            "quantity": 2e9
        });
        let err = Interaction::from_json(&v).expect_err("invalid");
        // type errors are reported before rule checks
        assert!(err.has_field("target.type"), "{err}");
        let mut v2 = v.clone();
        v2["target"]["type"] = json!("product");
        let err = Interaction::from_json(&v2).expect_err("invalid");
        for field in [
            "type",
            "timestamp",
            "origin.id",
            "actor.id",
            "target.id",
            "value.currency",
            "quantity",
        ] {
            assert!(err.has_field(field), "missing {field} in {err}");
        }
        // a negative amount is a refund, not an error
        assert!(!err.has_field("value.amount"), "{err}");
        assert!(err.to_string().contains("target.id: must not be empty"));
        assert!(err.to_string().contains("timestamp: not RFC 3339"));
        assert!(err.to_string().contains("type: unknown value \"BUY\""));
    }

    /// Returns (negative quantity), refunds (negative amount) and void lines
    /// (quantity 0) are real point-of-sale rows: accepted, and told apart by
    /// the features (`definition`).
    #[test]
    fn returns_refunds_and_void_lines_are_accepted() {
        for (amount, quantity) in [(-12.5, 1.0), (12.5, -1.0), (0.0, 0.0), (3.0, -0.5)] {
            let mut v = valid();
            v["value"] = json!({"amount": amount, "currency": "USD"});
            v["quantity"] = json!(quantity);
            let i = Interaction::from_json(&v).expect("accepted");
            assert_eq!(
                (i.value.map(|m| m.amount), i.quantity),
                (Some(amount), Some(quantity))
            );
        }
        let mut v = valid();
        v["quantity"] = json!(-2e9);
        assert!(Interaction::from_json(&v)
            .expect_err("absurd quantity")
            .has_field("quantity"));
    }

    #[test]
    fn rejects_non_objects_and_wrong_shapes() {
        assert!(Interaction::from_json(&json!([1]))
            .unwrap_err()
            .has_field("$"));
        let mut v = valid();
        v["origin"] = json!("store-1");
        assert!(Interaction::from_json(&v).unwrap_err().has_field("origin"));
        let mut v = valid();
        v["value"] = json!({"amount": 3});
        assert!(Interaction::from_json(&v)
            .unwrap_err()
            .has_field("value.currency"));
        let mut v = valid();
        v["timestamp"] = json!(1_700_000_000);
        assert!(Interaction::from_json(&v)
            .unwrap_err()
            .has_field("timestamp"));
        let mut v = valid();
        v["timestamp"] = json!("1960-01-01T00:00:00Z");
        assert!(Interaction::from_json(&v)
            .unwrap_err()
            .has_field("timestamp"));
    }

    #[test]
    fn numeric_seed_ids_are_kept_as_strings() {
        let mut v = valid();
        v["actor"]["id"] = json!(42);
        let i = Interaction::from_json(&v).expect("valid");
        assert_eq!(i.actor.id, "42");
    }

    #[test]
    fn content_id_is_stable_across_time_zones_and_field_order_but_not_content() {
        let a = Interaction::from_json(&valid()).expect("valid");
        let mut v = valid();
        v["timestamp"] = json!("2026-11-24T15:00:00Z");
        let b = Interaction::from_json(&v).expect("valid");
        assert_eq!(a.id, b.id);
        let mut v = valid();
        v["target"]["id"] = json!("sku-10");
        let c = Interaction::from_json(&v).expect("valid");
        assert_ne!(a.id, c.id);
        let mut v = valid();
        v["id"] = json!("given-1");
        assert_eq!(Interaction::from_json(&v).expect("valid").id, "given-1");
        // Pinned so that a change to the derivation (which would make retried
        // deliveries of old data count twice) cannot go unnoticed.
        assert_eq!(a.id, content_id(&a));
        assert_eq!(a.id, "ix_447df50d8d81eff2bd62680d650feae1");
    }

    #[test]
    fn serialised_interactions_round_trip() {
        let a = Interaction::from_json(&valid()).expect("valid");
        let text = serde_json::to_string(&a).expect("serialise");
        let back: Interaction = serde_json::from_str(&text).expect("deserialise");
        assert_eq!(a, back);
        let again =
            Interaction::from_json(&serde_json::from_str(&text).expect("json")).expect("valid");
        assert_eq!(a, again);
    }
}
