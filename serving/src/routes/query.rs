//! Typed query strings. [`ApiQuery<T>`] reads the query into `T` and, when a
//! parameter is wrong, answers 422 in the API's error shape naming it (axum's
//! `Query` answers 400 in plain text). The parameter types here carry their
//! own rules (`limit` 1–1000, `spendingClass` 1–5, RFC 3339 instants), so a
//! handler only ever sees values that hold.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::AppError;

/// A query string read into `T`; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        parse(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Reads a query string into `T`, naming the parameter that broke.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, AppError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        // A problem with the string as a whole (a parameter given twice, say)
        // has no path.
        let field = if field == "." {
            "query".to_owned()
        } else {
            field
        };
        AppError::invalid_field(&field, e.inner().to_string())
    })
}

/// Default `limit` of a list.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit` of a list.
pub const MAX_LIMIT: usize = 1000;

/// A list's `limit`: 1 to [`MAX_LIMIT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct Limit(usize);

impl Limit {
    /// The limit given, or [`DEFAULT_LIMIT`].
    pub fn or_default(limit: Option<Limit>) -> usize {
        limit.map_or(DEFAULT_LIMIT, |l| l.0)
    }
}

impl TryFrom<u64> for Limit {
    type Error = String;

    fn try_from(n: u64) -> Result<Limit, String> {
        usize::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .map(Limit)
            .ok_or_else(|| format!("must be 1 to {MAX_LIMIT}, got {n}"))
    }
}

/// `spendingClass`: 1 (budget) to 5 (premium).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct SpendingClass(pub u8);

impl TryFrom<u64> for SpendingClass {
    type Error = String;

    fn try_from(n: u64) -> Result<SpendingClass, String> {
        u8::try_from(n)
            .ok()
            .filter(|c| (1..=5).contains(c))
            .map(SpendingClass)
            .ok_or_else(|| format!("must be 1 to 5, got {n}"))
    }
}

/// An RFC 3339 instant, as microseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Instant(pub i64);

impl TryFrom<String> for Instant {
    type Error = NotRfc3339;

    fn try_from(text: String) -> Result<Instant, NotRfc3339> {
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| Instant(t.timestamp_micros()))
            .map_err(|e| NotRfc3339(format!("not RFC 3339 ({e}): {text:?}")))
    }
}

/// Why a text is not an [`Instant`].
#[derive(Debug)]
pub struct NotRfc3339(String);

impl fmt::Display for NotRfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{AppError, ErrorDetails};
    use features::LifeStage;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Sample {
        limit: Option<Limit>,
        spending_class: Option<SpendingClass>,
        life_stage: Option<LifeStage>,
        from: Option<Instant>,
        force: Option<bool>,
        topic: Option<String>,
    }

    /// The fields a rejected query names.
    fn fields(query: &str) -> Vec<(String, String)> {
        match parse::<Sample>(query) {
            Err(AppError::Invalid(ErrorDetails::Fields(fields))) => {
                fields.into_iter().map(|f| (f.field, f.message)).collect()
            }
            other => panic!("{query}: expected 422 with fields, got {other:?}"),
        }
    }

    #[test]
    fn good_queries_are_read_into_types() {
        let q: Sample = parse(
            "limit=7&spendingClass=5&lifeStage=young_family&from=2026-11-01T00:00:00Z&force=true&topic=a%20b&unknown=1",
        )
        .unwrap();
        assert_eq!(Limit::or_default(q.limit), 7);
        assert_eq!(q.spending_class, Some(SpendingClass(5)));
        assert_eq!(q.life_stage, Some(LifeStage::YoungFamily));
        assert_eq!(q.from, Some(Instant(1_793_491_200_000_000)));
        assert_eq!(q.force, Some(true));
        assert_eq!(q.topic.as_deref(), Some("a b"));
        let empty: Sample = parse("").unwrap();
        assert_eq!(Limit::or_default(empty.limit), DEFAULT_LIMIT);
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Strict {
        #[expect(
            dead_code,
            reason = "only its name matters: the test is about other names"
        )]
        life_stage: Option<LifeStage>,
    }

    /// A misspelt filter is refused, not ignored: ignoring it would answer
    /// the unfiltered list as if it were the filtered one.
    #[test]
    fn an_unknown_parameter_is_named() {
        for (query, named) in [("lifestage=senior", "lifestage"), ("=x", "")] {
            match parse::<Strict>(query) {
                Err(AppError::Invalid(ErrorDetails::Fields(fields))) => {
                    assert_eq!(fields.len(), 1, "{query}: {fields:?}");
                    assert!(
                        fields[0].message.contains("unknown field")
                            && fields[0].message.contains(&format!("`{named}`")),
                        "{query}: {fields:?}"
                    );
                }
                other => panic!("{query}: expected 422, got {other:?}"),
            }
        }
        assert!(parse::<Strict>("lifeStage=senior").is_ok());
    }

    #[test]
    fn a_bad_parameter_is_named_with_the_rule_it_breaks() {
        for (query, field, says) in [
            ("limit=0", "limit", "must be 1 to 1000, got 0"),
            ("limit=1001", "limit", "must be 1 to 1000"),
            ("limit=ten", "limit", "invalid digit"),
            ("spendingClass=6", "spendingClass", "must be 1 to 5, got 6"),
            ("spendingClass=-1", "spendingClass", "invalid digit"),
            ("lifeStage=teen", "lifeStage", "young_adult"),
            ("from=yesterday", "from", "not RFC 3339"),
            ("force=yes", "force", "true"),
            ("limit=5&limit=6", "query", "duplicate field"),
        ] {
            let named = fields(query);
            assert_eq!(named.len(), 1, "{query}: {named:?}");
            assert_eq!(named[0].0, field, "{query}: {named:?}");
            assert!(named[0].1.contains(says), "{query}: {named:?}");
        }
    }
}
