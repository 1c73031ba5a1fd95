//! `POST /v1/interactions` (one, an array, NDJSON or a protobuf
//! `InteractionBatch`; partial acceptance) and `POST /v1/score` (a history
//! scored without storing anything).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use features::validation::{ProblemGroup, ProblemSummary};
use features::{FieldError, Interaction, Profile, ValidationErrors};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use crate::engine::now_micros;
use crate::error::{ApiResult, AppError, ErrorDetails};
use crate::wire;

/// How a body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Json,
    NdJson,
    /// A `micro.v1.InteractionBatch` (SPEC §12).
    Protobuf,
}

/// Reads the content type: JSON, NDJSON or protobuf, anything else is a 415.
pub(crate) fn framing(headers: &HeaderMap) -> ApiResult<Framing> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match wire::media_type(content_type).as_str() {
        wire::JSON => Ok(Framing::Json),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Ok(Framing::NdJson),
        wire::PROTOBUF => Ok(Framing::Protobuf),
        "" => Err(AppError::Unsupported(
            "Content-Type is required: application/json, application/x-ndjson or application/x-protobuf".into(),
        )),
        other => Err(AppError::Unsupported(format!(
            "Content-Type {other} is not accepted: use application/json, application/x-ndjson or application/x-protobuf"
        ))),
    }
}

/// The body, or 413 (over the limit) / 400 (unreadable) as JSON errors.
pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|r| {
        if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge(format!("request body is too large: {}", r.body_text()))
        } else {
            AppError::Malformed(format!("request body could not be read: {}", r.body_text()))
        }
    })
}

/// The JSON body of an endpoint that takes only `application/json`.
pub(crate) fn json_request(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    endpoint: &str,
) -> ApiResult<Value> {
    let body = body_bytes(body)?;
    if framing(headers)? != Framing::Json {
        return Err(AppError::Unsupported(format!(
            "{endpoint} takes application/json"
        )));
    }
    json_body(&body)
}

/// Parses a whole JSON body, or answers 400 naming where it broke.
pub(crate) fn json_body(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::Malformed(format!("body is not valid JSON: {e}")))
}

/// The items of a body, each validated (in body order); `single` when the
/// body was one JSON object rather than a list.
pub(crate) fn items(
    framing: Framing,
    body: &[u8],
) -> ApiResult<(Vec<Result<Interaction, ValidationErrors>>, bool)> {
    match framing {
        Framing::Json => {
            let direct = std::str::from_utf8(body)
                .ok()
                .filter(|text| text.trim_start().starts_with('{'))
                .and_then(Interaction::from_json_text);
            if let Some(item) = direct {
                return Ok((vec![item], true));
            }
            match json_body(body)? {
                Value::Array(items) => {
                    Ok((items.iter().map(Interaction::from_json).collect(), false))
                }
                single => Ok((vec![Interaction::from_json(&single)], true)),
            }
        }
        Framing::NdJson => {
            let text = std::str::from_utf8(body)
                .map_err(|e| AppError::Malformed(format!("body is not UTF-8: {e}")))?;
            Ok((
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(item_of_line)
                    .collect(),
                false,
            ))
        }
        // Always a list, even of one: the answer says which items by index.
        Framing::Protobuf => Ok((
            wire::decode_batch(body).map_err(|e| AppError::Malformed(format!("body is {e}")))?,
            false,
        )),
    }
}

/// One NDJSON line, read directly when it has the usual shape (see
/// [`Interaction::from_json_text`]), else parsed as a value first.
fn item_of_line(line: &str) -> Result<Interaction, ValidationErrors> {
    Interaction::from_json_text(line).unwrap_or_else(|| match serde_json::from_str::<Value>(line) {
        Ok(value) => Interaction::from_json(&value),
        Err(e) => {
            let mut errors = ValidationErrors::new();
            errors.push("$", format!("not JSON: {e}"));
            Err(errors)
        }
    })
}

/// One rejected item of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejected {
    /// Its place in the body, from 0.
    pub index: usize,
    pub errors: Vec<FieldError>,
}

/// Most rejected items an answer lists one by one; beyond them (a bulk
/// load of a file with thousands of bad rows) the summary by field and
/// reason says the rest, as the batch file reports do (SPEC §2.4a).
pub const MAX_LISTED_REJECTIONS: usize = 100;

/// The rejected items of a batch: the first [`MAX_LISTED_REJECTIONS`] by
/// index, how many there were, and all of them grouped by field and reason
/// with counts and example indices.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rejections {
    /// The first 100 rejected items, by index.
    rejected: Vec<Rejected>,
    /// How many items were rejected in all.
    rejected_count: usize,
    /// All of them grouped by field and reason.
    rejected_summary: Vec<ProblemGroup>,
}

impl Rejections {
    fn push(&mut self, index: usize, errors: &ValidationErrors, summary: &mut ProblemSummary) {
        self.rejected_count += 1;
        summary.add(index, errors);
        if self.rejected.len() < MAX_LISTED_REJECTIONS {
            self.rejected.push(Rejected {
                index,
                errors: errors.errors().to_vec(),
            });
        }
    }

    fn is_empty(&self) -> bool {
        self.rejected_count == 0
    }
}

/// Splits validated items into the valid interactions with their indices
/// and the rejected ones.
fn validate(
    items: Vec<Result<Interaction, ValidationErrors>>,
) -> (Vec<(usize, Interaction)>, Rejections) {
    let mut good = Vec::with_capacity(items.len());
    let mut bad = Rejections::default();
    let mut summary = ProblemSummary::new();
    for (index, checked) in items.into_iter().enumerate() {
        match checked {
            Ok(i) => good.push((index, i)),
            Err(errors) => bad.push(index, &errors, &mut summary),
        }
    }
    bad.rejected_summary = summary.groups().into_iter().cloned().collect();
    (good, bad)
}

/// The answer to a batch, given once the accepted items are durable.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestAnswer {
    /// Items stored now.
    accepted: usize,
    /// Items stored before (the same id): not stored again.
    duplicates: usize,
    /// Items of users who were erased (and have not registered since):
    /// dropped, not stored (SPEC §10).
    erased: usize,
    #[serde(flatten)]
    rejections: Rejections,
    /// Ids of the items in body order (`null` for rejected ones): derived ids
    /// let a client address what it sent without one.
    ids: Vec<Option<String>>,
}

/// A JSON body of `POST /v1/interactions`: one interaction or a list of
/// them (NDJSON carries one per line).
// The OpenAPI shape only: handlers validate item by item, so that each bad
// one is reported by its index while the good ones are kept.
#[expect(dead_code, reason = "a schema; bodies are validated item by item")]
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum InteractionBody {
    One(Box<Interaction>),
    Many(Vec<Interaction>),
}

/// The body of `POST /v1/score`: a history, with whom and when it is scored
/// for, or a bare list of interactions.
#[expect(dead_code, reason = "a schema; bodies are validated item by item")]
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ScoreRequest {
    History {
        /// Defaults to the first interaction's actor.
        #[serde(rename = "userId")]
        #[schema(schema_with = features::validation::optional_id_schema)]
        user_id: Option<String>,
        /// The instant to score at (RFC 3339); defaults to now, or the
        /// latest interaction when that is later.
        #[serde(rename = "asOf")]
        #[schema(format = DateTime, pattern = r"^(19[7-9][0-9]|[2-9][0-9]{3})-")]
        as_of: Option<String>,
        interactions: Vec<Interaction>,
    },
    Bare(Vec<Interaction>),
}

/// A protobuf body of `POST /v1/interactions`: a `micro.v1.InteractionBatch`
/// of `proto/micro/v1/micro.proto` (`repeated Interaction interactions = 1`),
/// encoded. Its items are answered by index, as a JSON array's are.
#[expect(dead_code, reason = "a schema; bodies are decoded by prost")]
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct InteractionBatchProtobuf(Vec<u8>);

#[utoipa::path(post, path = "/v1/interactions", tag = "interactions",
    request_body(content(
        (InteractionBody = "application/json"),
        (String = "application/x-ndjson"),
        (InteractionBatchProtobuf = "application/x-protobuf"),
    ), description = "One interaction, a JSON array, NDJSON (one interaction per line), \
        or a protobuf `micro.v1.InteractionBatch` (proto/micro/v1/micro.proto)"),
    responses(
        (status = 200, body = IngestAnswer, description = "The good items are durable; bad ones are listed by index"),
        (status = 400, description = "The body cannot be read: not JSON, not NDJSON, or not a protobuf InteractionBatch"),
        (status = 422, description = "Every item is invalid"),
    ))]
pub async fn post_interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<IngestAnswer>> {
    let body = body_bytes(body)?;
    let framing = framing(&headers)?;
    let (items, single) = items(framing, &body)?;
    let total = items.len();
    let (good, rejections) = validate(items);
    state
        .metrics
        .ingest_rejected
        .inc_by(rejections.rejected_count as u64);
    if good.is_empty() && !rejections.is_empty() {
        let details = if single {
            ErrorDetails::Fields(
                rejections
                    .rejected
                    .into_iter()
                    .next()
                    .map(|r| r.errors)
                    .unwrap_or_default(),
            )
        } else {
            ErrorDetails::Batch(Box::new(rejections))
        };
        return Err(AppError::Invalid(details));
    }
    let (indices, interactions): (Vec<usize>, Vec<Interaction>) = good.into_iter().unzip();
    let mut ids: Vec<Option<String>> = vec![None; total];
    for (&i, x) in indices.iter().zip(&interactions) {
        ids[i] = Some(x.id.clone());
    }
    let outcomes = match state.pipeline.ingest(interactions).await {
        Ok(a) => a,
        Err(e) => {
            if matches!(e, crate::pipeline::PipelineError::Overloaded { .. }) {
                state.metrics.ingest_refused.inc();
            }
            return Err(e.into());
        }
    };
    state.metrics.count_ingested(&outcomes);
    let (accepted, duplicates, erased) = crate::pipeline::tally(&outcomes);
    Ok(Json(IngestAnswer {
        accepted,
        duplicates,
        erased,
        rejections,
        ids,
    }))
}

#[utoipa::path(post, path = "/v1/score", tag = "profiles",
    request_body(content = ScoreRequest),
    responses((status = 200, body = Profile, description = "The profile this history yields; nothing is stored"),
        (status = 422, description = "Invalid interactions, by index")))]
pub async fn score(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Profile>> {
    let value = json_request(&headers, body, "POST /v1/score")?;
    let (user_id, as_of, list) = match value {
        Value::Array(list) => (None, None, list),
        Value::Object(mut obj) => {
            let list = match obj.remove("interactions") {
                Some(Value::Array(list)) => list,
                _ => {
                    return Err(AppError::invalid_field(
                        "interactions",
                        "is required: an array of interactions",
                    ))
                }
            };
            let as_of = match obj.get("asOf") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(
                    chrono::DateTime::parse_from_rfc3339(s)
                        .map_err(|e| AppError::invalid_field("asOf", format!("not RFC 3339: {e}")))?
                        .timestamp_micros(),
                ),
                Some(_) => {
                    return Err(AppError::invalid_field(
                        "asOf",
                        "must be an RFC 3339 string",
                    ))
                }
            };
            // The rules of a registration's userId (a string, or a whole
            // number), read by the same function.
            let mut errors = ValidationErrors::new();
            let user = features::validation::json_id(&mut errors, &obj, "userId", "userId")
                .map(|id| id.into_owned());
            if !errors.is_empty() {
                return Err(AppError::invalid(&errors));
            }
            if let Some(id) = &user {
                if id.trim().is_empty()
                    || features::validation::longer_than(id, features::interaction::MAX_ID_LEN)
                {
                    return Err(AppError::invalid_field(
                        "userId",
                        "must be 1 to 256 characters, not blank",
                    ));
                }
            }
            (user, as_of, list)
        }
        _ => {
            return Err(AppError::invalid_field(
                "$",
                "must be an object with interactions, or an array",
            ))
        }
    };
    let (good, rejections) = validate(list.iter().map(Interaction::from_json).collect());
    if !rejections.is_empty() {
        return Err(AppError::Invalid(ErrorDetails::Batch(Box::new(rejections))));
    }
    let history: Vec<Interaction> = good.into_iter().map(|(_, i)| i).collect();
    let user_id = user_id
        .or_else(|| history.first().map(|i| i.user_id().to_owned()))
        .unwrap_or_default();
    let latest = history.iter().map(Interaction::timestamp_micros).max();
    let as_of = as_of.unwrap_or_else(|| now_micros().max(latest.unwrap_or(i64::MIN)));
    Ok(Json(state.engine.score_history(&user_id, &history, as_of)))
}
