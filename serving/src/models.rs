//! The model in service. A registry version is loaded (checksums and
//! feature schema verified), built into a scorer and swapped into the
//! engine in one place, [`Models::activate`], whether it arrives at start
//! (the registry's `current`) or by promotion; a version that fails any
//! check leaves the serving model as it was.

use std::sync::Arc;

use features::registry::{Registry, RegistryError};
use features::ProfileScorer;

use crate::engine::{ActiveModel, Engine};
use crate::telemetry::Metrics;

/// Name of the model family serving loads from the registry.
pub const MODEL_NAME: &str = "profile";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("loading the model stopped: {0}")]
    Stopped(String),
}

/// A version now serving, and the one it replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activated {
    pub version: String,
    pub previous: Option<String>,
    /// Live states were folded under other features and are rebuilt from
    /// the log (see [`Engine::set_model`]).
    pub states_rebuilt: bool,
}

/// The registry and the engine's model slot.
#[derive(Debug)]
pub struct Models {
    registry: Arc<Registry>,
    engine: Arc<Engine>,
    metrics: Metrics,
    /// Promotions one at a time.
    promoting: tokio::sync::Mutex<()>,
}

impl Models {
    pub fn new(registry: Arc<Registry>, engine: Arc<Engine>, metrics: Metrics) -> Models {
        Models {
            registry,
            engine,
            metrics,
            promoting: tokio::sync::Mutex::new(()),
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The version scoring now.
    pub fn serving(&self) -> Option<String> {
        self.engine.model().map(|m| m.version().to_owned())
    }

    /// Loads a version and serves it.
    pub async fn activate(&self, version: &str) -> Result<Activated, ModelError> {
        let registry = self.registry.clone();
        let v = version.to_owned();
        let scorer = blocking(move || load(&registry, &v)).await?;
        Ok(self.swap(version, scorer))
    }

    /// Serves the registry's `current` version, if one is promoted.
    pub async fn activate_current(&self) -> Result<Option<Activated>, ModelError> {
        let registry = self.registry.clone();
        let current = blocking(move || Ok(registry.current(MODEL_NAME)?)).await?;
        match current {
            Some(version) => Ok(Some(self.activate(&version).await?)),
            None => Ok(None),
        }
    }

    /// Makes a version the registry's `current` (refused below its baseline
    /// unless `force`) and serves it. Checked before anything changes: a
    /// version that cannot be served is not promoted.
    pub async fn promote(&self, version: &str, force: bool) -> Result<Activated, ModelError> {
        let _one_at_a_time = self.promoting.lock().await;
        let registry = self.registry.clone();
        let v = version.to_owned();
        let scorer = blocking(move || {
            let scorer = load(&registry, &v)?;
            registry.promote(MODEL_NAME, &v, force)?;
            Ok(scorer)
        })
        .await?;
        Ok(self.swap(version, scorer))
    }

    fn swap(&self, version: &str, scorer: ProfileScorer) -> Activated {
        let previous = self.serving();
        let states_rebuilt = self.engine.set_model(ActiveModel::new(scorer));
        self.metrics.set_model(Some(version));
        tracing::info!(%version, ?previous, states_rebuilt, "serving model");
        Activated {
            version: version.to_owned(),
            previous,
            states_rebuilt,
        }
    }
}

/// A version's artifact, verified, as a scorer.
fn load(registry: &Registry, version: &str) -> Result<ProfileScorer, ModelError> {
    let artifact = registry.load(MODEL_NAME, version)?;
    Ok(ProfileScorer::from_artifact(&artifact)?)
}

/// Registry reads touch the disk: off the runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ModelError> + Send + 'static,
) -> Result<T, ModelError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ModelError::Stopped(e.to_string()))?
}
