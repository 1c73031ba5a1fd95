//! Content types on the wire (SPEC §12). Interactions arrive as JSON,
//! NDJSON or a protobuf `InteractionBatch`, and every protobuf item is
//! validated by the code that validates JSON ones.

use features::{Interaction, ValidationErrors};
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

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("not a protobuf {message}: {source}")]
    Protobuf {
        message: &'static str,
        source: proto::DecodeError,
    },
}

/// A protobuf `InteractionBatch`: the items in order, each validated as a
/// JSON item is (the same rules, field names and derived ids).
pub fn decode_batch(body: &[u8]) -> Result<Vec<Result<Interaction, ValidationErrors>>, WireError> {
    decode_batch_message(body).map(|batch| batch.validate())
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
