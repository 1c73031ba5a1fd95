//! A promoted artifact made ready to score: the fitted feature spec, the
//! catalog index it was trained against, and one fitted model per target.
//! Serving holds one of these behind an atomic swap and scores live states and
//! `POST /v1/score` histories with it.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::definition::{CatalogIndex, FeatureSpec};
use crate::incremental::UserFeatureState;
use crate::model::{ClassifierModel, ProfileModel, TopicRanker};
use crate::profile::Profile;
use crate::registry::{Artifact, RegistryError};
use crate::user::LifeStage;

/// Target names, as in manifests, labels and profiles.
pub const SPENDING_CLASS: &str = "spendingClass";
pub const LIFE_STAGE: &str = "actingLifeStage";
pub const TOPICS: &str = "topics";
/// The artifact file holding the catalog the features were computed against.
pub const CATALOG_FILE: &str = "catalog.json";

/// A loaded, verified model version, ready to score feature states.
#[derive(Clone, Debug)]
pub struct ProfileScorer {
    pub version: String,
    pub spec: FeatureSpec,
    pub index: CatalogIndex,
    pub spending_class: Option<ClassifierModel>,
    pub life_stage: Option<ClassifierModel>,
    pub topics: Option<TopicRanker>,
}

/// What a model says of one user.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub spending_class: Option<u8>,
    pub spending_class_confidence: Option<f64>,
    pub life_stage: Option<LifeStage>,
    pub life_stage_confidence: Option<f64>,
    pub topics: Vec<String>,
}

fn invalid(artifact: &Artifact, message: String) -> RegistryError {
    RegistryError::Manifest {
        path: artifact.dir.clone(),
        message,
    }
}

impl ProfileScorer {
    /// Builds the scorer from a verified artifact: every model file named by
    /// the manifest must parse as the model its target expects.
    pub fn from_artifact(artifact: &Artifact) -> Result<ProfileScorer, RegistryError> {
        let manifest = &artifact.manifest;
        let catalog: Catalog = match artifact.file(CATALOG_FILE) {
            Some(bytes) => serde_json::from_slice(bytes)
                .map_err(|e| invalid(artifact, format!("{CATALOG_FILE}: {e}")))?,
            None => {
                return Err(invalid(
                    artifact,
                    format!("{CATALOG_FILE} is missing: the catalog index belongs to the model"),
                ))
            }
        };
        let spec = manifest.feature_spec.clone();
        let mut scorer = ProfileScorer {
            version: manifest.version.clone(),
            index: spec.index_catalog(&catalog),
            spec,
            spending_class: None,
            life_stage: None,
            topics: None,
        };
        for entry in &manifest.models {
            let Some(file) = &entry.file else { continue };
            let bytes = artifact
                .file(file)
                .ok_or_else(|| invalid(artifact, format!("model file {file} is not listed")))?;
            let model: ProfileModel = serde_json::from_slice(bytes)
                .map_err(|e| invalid(artifact, format!("{file}: {e}")))?;
            match (entry.target.as_str(), model) {
                (SPENDING_CLASS, ProfileModel::Classifier(m)) => scorer.spending_class = Some(m),
                (LIFE_STAGE, ProfileModel::Classifier(m)) => scorer.life_stage = Some(m),
                (TOPICS, ProfileModel::TopicRanker(m)) => scorer.topics = Some(m),
                (target, _) => {
                    return Err(invalid(
                        artifact,
                        format!("{file}: not a model for target {target:?}"),
                    ))
                }
            }
        }
        Ok(scorer)
    }

    /// Scores feature vectors (rows of `x`, in this spec's schema order).
    pub fn score_matrix(&self, x: &Array2<f64>) -> Vec<Scores> {
        let mut out = vec![Scores::default(); x.nrows()];
        if x.nrows() == 0 {
            return out;
        }
        if let Some(m) = &self.spending_class {
            for (s, p) in out.iter_mut().zip(m.predict(x)) {
                s.spending_class = m.classes.get(p.class).and_then(|c| c.parse().ok());
                s.spending_class_confidence = p.confidence;
            }
        }
        if let Some(m) = &self.life_stage {
            for (s, p) in out.iter_mut().zip(m.predict(x)) {
                s.life_stage = m.classes.get(p.class).and_then(|c| LifeStage::parse(c));
                s.life_stage_confidence = p.confidence;
            }
        }
        if let Some(m) = &self.topics {
            for (s, names) in out.iter_mut().zip(m.top_names(x, Profile::MAX_TOPICS)) {
                s.topics = names;
            }
        }
        out
    }

    /// Scores one user's state as of `as_of_micros`. A user with no
    /// interactions gets no behavioural scores (nothing to go on).
    pub fn score(&self, state: &UserFeatureState, as_of_micros: i64) -> Scores {
        if state.interaction_count() == 0 {
            return Scores::default();
        }
        let v = state.vector(&self.spec, as_of_micros);
        let x = ClassifierModel::row(&v);
        self.score_matrix(&x).pop().unwrap_or_default()
    }
}
