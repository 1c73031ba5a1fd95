//! Validation results that name every problem by its field path, so a client
//! can fix all of them at once instead of one per round trip.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem with one field, e.g. `target.id: must not be empty`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in one input. Never empty when returned as an error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// `Ok(value)` when nothing was pushed, the collected errors otherwise.
    pub fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, ValidationErrors> {
        if self.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }

    /// Whether some error names exactly this field.
    pub fn has_field(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Checks a required, non-blank string of bounded length.
pub(crate) fn check_text(
    errors: &mut ValidationErrors,
    field: &str,
    value: Option<&str>,
    max_len: usize,
) {
    match value {
        None => errors.push(field, "is required"),
        Some(v) if v.trim().is_empty() => errors.push(field, "must not be empty"),
        Some(v) if longer_than(v, max_len) => {
            errors.push(field, format!("must be at most {max_len} characters"))
        }
        Some(_) => {}
    }
}

/// Reads an optional string field of a JSON object, recording a type error.
pub(crate) fn json_str<'a>(
    errors: &mut ValidationErrors,
    obj: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
    path: &str,
) -> Option<&'a str> {
    match obj.get(key) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            errors.push(path, "must be a string");
            None
        }
    }
}

/// Reads an optional number field of a JSON object, recording a type error.
pub(crate) fn json_f64(
    errors: &mut ValidationErrors,
    obj: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    path: &str,
) -> Option<f64> {
    match obj.get(key) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(_) => {
            errors.push(path, "must be a number");
            None
        }
    }
}

/// Like [`json_str`] but integers become their decimal text: the seed's ids
/// are numbers, and they are accepted and kept as strings.
pub fn json_id<'a>(
    errors: &mut ValidationErrors,
    obj: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
    path: &str,
) -> Option<std::borrow::Cow<'a, str>> {
    match obj.get(key) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(std::borrow::Cow::Borrowed(s)),
        // JSON has one number type: `7.0` is the whole number 7 too. Beyond
        // ±2^53 many JSON readers (JavaScript's among them) round numbers, so
        // an id that large must be sent as a string.
        Some(serde_json::Value::Number(n)) => match whole(n) {
            Some(i) if i.unsigned_abs() <= MAX_NUMERIC_ID => {
                Some(std::borrow::Cow::Owned(i.to_string()))
            }
            _ => {
                errors.push(path, "must be a string, or a whole number within ±2^53");
                None
            }
        },
        Some(_) => {
            errors.push(path, "must be a string");
            None
        }
    }
}

/// Whether a text has more than `max` characters (code points, as JSON
/// Schema's `maxLength` counts them).
pub fn longer_than(text: &str, max: usize) -> bool {
    // A text of at most `max` bytes has at most `max` characters.
    text.len() > max && text.chars().count() > max
}

/// Largest magnitude of an id given as a JSON number: 2^53.
pub const MAX_NUMERIC_ID: u64 = 1 << 53;

/// A number that is whole and within `i64`, written as an integer or not
/// (`7`, `7.0`, `7e0`).
pub fn whole(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // 2^63 itself is not an i64.
    (f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63)).then_some(f as i64)
}

/// A JSON Schema pattern for "not blank": some character that is not
/// whitespace to Rust's `trim` (the validators' rule). ECMA's `\s` misses
/// U+0085 and counts U+FEFF, which `trim` does the other way round.
#[cfg(feature = "openapi")]
pub const NOT_BLANK: &str = r"[^\s\u0085]|\uFEFF";

/// The OpenAPI schema of an id field: a non-blank string of at most 256
/// bytes, or a whole number within ±2^53 (the seed's numeric ids, stored as strings; see
/// [`json_id`]).
#[cfg(feature = "openapi")]
pub fn id_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(crate::interaction::MAX_ID_LEN))
                .pattern(Some(NOT_BLANK)),
        )
        // Integers JSON readers keep exactly (within ±2^53).
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(-(MAX_NUMERIC_ID as i64)))
                .maximum(Some(MAX_NUMERIC_ID as i64)),
        )
        .build()
        .into()
}

/// [`id_schema`] or `null` (absent): the id of an interaction, the userId
/// of a registration.
#[cfg(feature = "openapi")]
pub fn optional_id_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(id_schema())
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

/// How many example rows (or batch indices) a [`ProblemSummary`] keeps per
/// group.
pub const MAX_EXAMPLES: usize = 3;

/// One kind of problem: a field and a reason, how many rows had it and the
/// first few of them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemGroup {
    pub field: String,
    /// The message with quoted values replaced by `"…"`, so that rows with
    /// different bad values fall into one group.
    pub reason: String,
    pub count: usize,
    /// The first [`MAX_EXAMPLES`] rows (or indices) with this problem.
    pub examples: Vec<usize>,
    /// The first such row's full message, values included.
    pub example_message: String,
}

/// Problems of many rows grouped by field and reason, with counts and a few
/// example rows: what a report of a real file with thousands of bad rows (or
/// a batch with thousands of bad items) can show in a few lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProblemSummary {
    groups: std::collections::BTreeMap<(String, String), ProblemGroup>,
}

impl ProblemSummary {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records every problem of one row.
    pub fn add(&mut self, row: usize, errors: &ValidationErrors) {
        for e in &errors.0 {
            self.add_one(row, &e.field, &e.message);
        }
    }

    /// Records one problem of one row.
    pub fn add_one(&mut self, row: usize, field: &str, message: &str) {
        let reason = without_quoted_values(message);
        let group = self
            .groups
            .entry((field.to_owned(), reason.clone()))
            .or_insert_with(|| ProblemGroup {
                field: field.to_owned(),
                reason,
                count: 0,
                examples: Vec::new(),
                example_message: message.to_owned(),
            });
        group.count += 1;
        if group.examples.len() < MAX_EXAMPLES {
            group.examples.push(row);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The groups, most frequent first (then by field and reason).
    pub fn groups(&self) -> Vec<&ProblemGroup> {
        let mut groups: Vec<&ProblemGroup> = self.groups.values().collect();
        groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.field.cmp(&b.field))
                .then_with(|| a.reason.cmp(&b.reason))
        });
        groups
    }
}

/// `unknown value "BUY" (expected …)` → `unknown value "…" (expected …)`.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                out.push_str("\"…\"");
                quoted = true;
            }
            ('"', true) => quoted = false,
            (c, false) => out.push(c),
            (_, true) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_group_by_field_and_reason_whatever_the_value() {
        let mut summary = ProblemSummary::new();
        for row in 1..=1000 {
            let mut errors = ValidationErrors::new();
            errors.push(
                "type",
                format!("unknown value \"X{row}\" (expected one of A, B)"),
            );
            if row % 2 == 0 {
                errors.push("timestamp", "is required");
            }
            summary.add(row, &errors);
        }
        let groups = summary.groups();
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[0].field.as_str(), groups[0].count), ("type", 1000));
        assert_eq!(
            groups[0].reason,
            "unknown value \"…\" (expected one of A, B)"
        );
        assert_eq!(groups[0].examples, [1, 2, 3]);
        assert!(groups[0].example_message.contains("\"X1\""));
        assert_eq!(
            (
                groups[1].field.as_str(),
                groups[1].count,
                &groups[1].examples[..]
            ),
            ("timestamp", 500, &[2, 4, 6][..])
        );
    }
}
