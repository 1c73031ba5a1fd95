//! Validation results that name every problem by its field path, so a client
//! can fix all of them at once instead of one per round trip.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem with one field, e.g. `target.id: must not be empty`.
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
        Some(v) if v.len() > max_len => {
            errors.push(field, format!("must be at most {max_len} bytes"))
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
pub(crate) fn json_id<'a>(
    errors: &mut ValidationErrors,
    obj: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
    path: &str,
) -> Option<std::borrow::Cow<'a, str>> {
    match obj.get(key) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(std::borrow::Cow::Borrowed(s)),
        Some(serde_json::Value::Number(n)) if n.is_u64() || n.is_i64() => {
            Some(std::borrow::Cow::Owned(n.to_string()))
        }
        Some(_) => {
            errors.push(path, "must be a string");
            None
        }
    }
}
