//! Micro's shared vocabulary: the domain types every service exchanges
//! (interactions, events, users, catalog items, labels, profiles), their
//! validation, and the one definition of every behavioural feature.
//!
//! Features are evaluated two ways from [`definition::FeatureSpec`]: the
//! incremental fold in [`incremental`] (serving, one interaction at a time) and
//! the polars evaluator in the `features-batch` crate (training, whole logs).
//! The parity property test there proves they agree.

pub mod catalog;
pub mod definition;
pub mod event;
pub mod gbdt;
pub mod incremental;
pub mod interaction;
pub mod labels;
pub mod model;
pub mod profile;
pub mod registry;
pub mod scoring;
pub mod softmax;
pub mod user;
pub mod validation;

pub use catalog::{Catalog, CatalogItem};
pub use definition::{FeatureParams, FeatureSchema, FeatureSpec};
pub use event::{Event, EventType, NewEvent};
pub use incremental::{FoldInput, UserFeatureState};
pub use interaction::{Entity, Interaction, InteractionType, Money, RawInteraction};
pub use labels::LabelRow;
pub use profile::{Profile, ProfileAbout, ProfileConfidence};
pub use scoring::{ProfileScorer, Scores};
pub use user::{LifeStage, MaritalStatus, UserRegistration};
pub use validation::{FieldError, ValidationErrors};

/// Errors of the features crate. Domain errors only: callers decide how to
/// present them (HTTP status, CLI message).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("feature schema mismatch: {0}")]
    Schema(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
