//! Content types on the wire (SPEC §12). Interactions arrive as JSON,
//! NDJSON or a protobuf `InteractionBatch`, over HTTP and NATS alike, and
//! every protobuf item is validated by the code that validates JSON ones.
//! Events leave on NATS as JSON or protobuf (`MICRO_BUS_FORMAT`), each with
//! a `Content-Type` header saying which, so that a consumer reads both
//! whatever the publisher was configured with.

use features::{Event, Interaction, ValidationErrors};
use proto::{v1, Message};

/// The media type of JSON bodies and messages.
pub const JSON: &str = "application/json";
/// The media type of protobuf bodies and messages.
pub const PROTOBUF: &str = proto::CONTENT_TYPE;

/// The media type of a `Content-Type` value: lower case, parameters
/// (`; charset=…`) dropped.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// How events are encoded on `micro.events.<type>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BusFormat {
    /// SPEC §2.2's JSON, `Content-Type: application/json`.
    #[default]
    Json,
    /// A `micro.v1.Event`, `Content-Type: application/x-protobuf`.
    Protobuf,
}

impl BusFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            BusFormat::Json => JSON,
            BusFormat::Protobuf => PROTOBUF,
        }
    }

    /// The message body of an event.
    pub fn encode_event(self, event: &Event) -> Result<Vec<u8>, WireError> {
        match self {
            BusFormat::Json => {
                serde_json::to_vec(event).map_err(|e| WireError::Json(e.to_string()))
            }
            BusFormat::Protobuf => Ok(v1::Event::from(event).encode_to_vec()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("not a protobuf {message}: {source}")]
    Protobuf {
        message: &'static str,
        source: proto::DecodeError,
    },
    #[error("Content-Type {0} is not accepted: use application/json or application/x-protobuf")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(ValidationErrors),
}

/// An event as published on `micro.events.<type>`, read by its
/// `Content-Type`: JSON when there is none (as before protobuf was offered).
pub fn decode_event(content_type: Option<&str>, body: &[u8]) -> Result<Event, WireError> {
    match content_type.map(media_type).as_deref() {
        None | Some(JSON) => {
            serde_json::from_slice(body).map_err(|e| WireError::Json(e.to_string()))
        }
        Some(PROTOBUF) => v1::Event::decode(body)
            .map_err(|source| WireError::Protobuf {
                message: "Event",
                source,
            })?
            .to_event()
            .map_err(WireError::Invalid),
        Some(other) => Err(WireError::Unsupported(other.to_owned())),
    }
}

/// A protobuf `InteractionBatch`: the items in order, each validated as a
/// JSON item is (the same rules, field names and derived ids).
pub fn decode_batch(body: &[u8]) -> Result<Vec<Result<Interaction, ValidationErrors>>, WireError> {
    Ok(decode_batch_message(body)?
        .into_valid()
        .map(|item| item.map_err(|invalid| invalid.errors))
        .collect())
}

/// A protobuf `InteractionBatch`, decoded but not validated.
pub fn decode_batch_message(body: &[u8]) -> Result<v1::InteractionBatch, WireError> {
    v1::InteractionBatch::decode(body).map_err(|source| WireError::Protobuf {
        message: "InteractionBatch",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        crate::bus::new_event(
            "user.registered",
            serde_json::json!({"userId": "u1", "kids": 2}),
        )
    }

    #[test]
    fn events_read_back_in_either_format_by_their_content_type() {
        let e = event();
        for format in [BusFormat::Json, BusFormat::Protobuf] {
            let body = format.encode_event(&e).expect("encodes");
            let content_type = format!("{}; charset=utf-8", format.content_type().to_uppercase());
            assert_eq!(
                decode_event(Some(&content_type), &body).expect("decodes"),
                e
            );
        }
        let json = BusFormat::Json.encode_event(&e).expect("encodes");
        assert_eq!(decode_event(None, &json).expect("no header: JSON"), e);
        let protobuf = BusFormat::Protobuf.encode_event(&e).expect("encodes");
        assert!(matches!(
            decode_event(None, &protobuf),
            Err(WireError::Json(_))
        ));
        assert!(matches!(
            decode_event(Some("text/plain"), &json),
            Err(WireError::Unsupported(t)) if t == "text/plain"
        ));
    }

    #[test]
    fn undecodable_batches_say_so() {
        let err = decode_batch(b"\xff\xff\xff").expect_err("not protobuf");
        assert!(
            err.to_string()
                .starts_with("not a protobuf InteractionBatch"),
            "{err}"
        );
        assert!(decode_batch(b"").expect("the empty batch").is_empty());
    }
}
