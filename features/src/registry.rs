//! The model registry on disk (SPEC §6): `models/<name>/<version>/` holds a
//! `manifest.json` and the model files, immutable once written;
//! `models/<name>/current` names the promoted version.
//!
//! Writing goes through a temporary directory renamed into place, so a
//! version is either complete or absent. Loading checks every file against the
//! SHA-256 recorded in the manifest and the feature schema against this
//! build's definition, so a corrupted or incompatible artifact is refused with
//! a message that says which.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::definition::{FeatureSchema, FeatureSpec};

pub const MANIFEST: &str = "manifest.json";
pub const CURRENT: &str = "current";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: manifest is not valid: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{path}: file {file} is corrupted (sha256 {actual}, manifest says {expected})")]
    Corrupted {
        path: PathBuf,
        file: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{path}: feature schema {artifact} does not match this build's {current}: \
         the model was trained on other features; retrain it"
    )]
    SchemaMismatch {
        path: PathBuf,
        artifact: String,
        current: String,
    },
    #[error("model {name} has no version {version}")]
    UnknownVersion { name: String, version: String },
    #[error("model {name} has no promoted version (nothing in {path})")]
    NothingPromoted { name: String, path: PathBuf },
    #[error("{version} does not beat its baseline on: {models}; promote with force to override")]
    BelowBaseline { version: String, models: String },
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where the training data came from, so a model can be traced to its inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// `file name → sha256` of each input file.
    pub files: BTreeMap<String, String>,
    pub interactions: usize,
    pub users: usize,
    pub as_of: String,
}

/// One trained (or skipped) model in a version.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// `spendingClass`, `actingLifeStage` or `topics`.
    pub target: String,
    /// Model family kept (e.g. `logistic_regression`), or `None` if skipped.
    pub family: Option<String>,
    /// Why the model was skipped, when it was.
    pub skipped: Option<String>,
    /// Model file in the version directory.
    pub file: Option<String>,
    /// Whether it beat its baseline on held-out users.
    pub beats_baseline: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub created_at: DateTime<Utc>,
    /// `micro-train` version (and git commit when known) that built it.
    pub code_version: String,
    pub feature_schema: FeatureSchema,
    /// The fitted feature definition serving applies unchanged.
    pub feature_spec: FeatureSpec,
    pub training_data: DataFingerprint,
    /// Class names per target, in model output order.
    pub label_vocabularies: BTreeMap<String, Vec<String>>,
    pub models: Vec<ModelEntry>,
    /// Evaluation results (structure owned by the trainer).
    pub metrics: serde_json::Value,
    /// `file name → sha256` of every file besides the manifest.
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    /// Targets whose model was trained but does not beat its baseline.
    pub fn below_baseline(&self) -> Vec<&str> {
        self.models
            .iter()
            .filter(|m| m.family.is_some() && !m.beats_baseline)
            .map(|m| m.target.as_str())
            .collect()
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A verified artifact: its manifest and file contents.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Artifact {
    /// Loads a version directory, verifying checksums and that its feature
    /// schema is the one this build computes for the artifact's spec.
    pub fn load(dir: &Path) -> Result<Artifact> {
        let manifest_path = dir.join(MANIFEST);
        let text = fs::read(&manifest_path).map_err(io_err(&manifest_path))?;
        let manifest: Manifest =
            serde_json::from_slice(&text).map_err(|e| RegistryError::Manifest {
                path: manifest_path.clone(),
                message: e.to_string(),
            })?;
        let mut files = BTreeMap::new();
        for (name, expected) in &manifest.files {
            if name.contains('/') || name.contains("..") {
                return Err(RegistryError::Manifest {
                    path: manifest_path,
                    message: format!("file name {name:?} leaves the version directory"),
                });
            }
            let path = dir.join(name);
            let bytes = fs::read(&path).map_err(io_err(&path))?;
            let actual = sha256_hex(&bytes);
            if &actual != expected {
                return Err(RegistryError::Corrupted {
                    path: dir.to_owned(),
                    file: name.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
            files.insert(name.clone(), bytes);
        }
        let current = manifest.feature_spec.schema();
        if current.hash != manifest.feature_schema.hash {
            return Err(RegistryError::SchemaMismatch {
                path: dir.to_owned(),
                artifact: manifest.feature_schema.hash.clone(),
                current: current.hash,
            });
        }
        Ok(Artifact {
            dir: dir.to_owned(),
            manifest,
            files,
        })
    }

    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }
}

/// The registry root (`models/`).
#[derive(Clone, Debug)]
pub struct Registry {
    root: PathBuf,
}

impl Registry {
    pub fn new(root: impl Into<PathBuf>) -> Registry {
        Registry { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn version_dir(&self, name: &str, version: &str) -> PathBuf {
        self.root.join(name).join(version)
    }

    /// Writes a new immutable version. The manifest's `files` are filled in
    /// from `files`; the version name gets a numeric suffix if taken.
    pub fn write(&self, mut manifest: Manifest, files: &[(String, Vec<u8>)]) -> Result<PathBuf> {
        let model_dir = self.root.join(&manifest.name);
        fs::create_dir_all(&model_dir).map_err(io_err(&model_dir))?;
        let base = manifest.version.clone();
        let mut n = 1;
        while model_dir.join(&manifest.version).exists() {
            n += 1;
            manifest.version = format!("{base}-{n}");
        }
        manifest.files = files
            .iter()
            .map(|(name, bytes)| (name.clone(), sha256_hex(bytes)))
            .collect();
        let staging = model_dir.join(format!(".tmp-{}-{}", manifest.version, std::process::id()));
        fs::create_dir_all(&staging).map_err(io_err(&staging))?;
        for (name, bytes) in files {
            let path = staging.join(name);
            fs::write(&path, bytes).map_err(io_err(&path))?;
        }
        let manifest_path = staging.join(MANIFEST);
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| RegistryError::Manifest {
            path: manifest_path.clone(),
            message: e.to_string(),
        })?;
        fs::write(&manifest_path, text).map_err(io_err(&manifest_path))?;
        let dir = model_dir.join(&manifest.version);
        fs::rename(&staging, &dir).map_err(io_err(&dir))?;
        Ok(dir)
    }

    /// Manifests of every version of `name`, oldest first.
    pub fn list(&self, name: &str) -> Result<Vec<Manifest>> {
        let model_dir = self.root.join(name);
        let mut out = Vec::new();
        let entries = match fs::read_dir(&model_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&model_dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&model_dir))?;
            let path = entry.path().join(MANIFEST);
            if entry.file_name().to_string_lossy().starts_with('.') || !path.exists() {
                continue;
            }
            let text = fs::read(&path).map_err(io_err(&path))?;
            let manifest: Manifest =
                serde_json::from_slice(&text).map_err(|e| RegistryError::Manifest {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            out.push(manifest);
        }
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.version.cmp(&b.version))
        });
        Ok(out)
    }

    /// The promoted version of `name`, if any.
    pub fn current(&self, name: &str) -> Result<Option<String>> {
        let path = self.root.join(name).join(CURRENT);
        match fs::read_to_string(&path) {
            Ok(v) => Ok(Some(v.trim().to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Loads and verifies one version.
    pub fn load(&self, name: &str, version: &str) -> Result<Artifact> {
        let dir = self.version_dir(name, version);
        if !dir.join(MANIFEST).exists() {
            return Err(RegistryError::UnknownVersion {
                name: name.to_owned(),
                version: version.to_owned(),
            });
        }
        Artifact::load(&dir)
    }

    /// Loads the promoted version.
    pub fn load_current(&self, name: &str) -> Result<Artifact> {
        let version = self
            .current(name)?
            .ok_or_else(|| RegistryError::NothingPromoted {
                name: name.to_owned(),
                path: self.root.join(name).join(CURRENT),
            })?;
        self.load(name, &version)
    }

    /// Points `current` at `version` (atomically), after verifying it loads.
    /// Refuses a version with a model below its baseline unless `force`.
    pub fn promote(&self, name: &str, version: &str, force: bool) -> Result<Artifact> {
        let artifact = self.load(name, version)?;
        let below = artifact.manifest.below_baseline();
        if !below.is_empty() && !force {
            return Err(RegistryError::BelowBaseline {
                version: version.to_owned(),
                models: below.join(", "),
            });
        }
        let model_dir = self.root.join(name);
        let tmp = model_dir.join(format!(".{CURRENT}.tmp-{}", std::process::id()));
        fs::write(&tmp, format!("{version}\n")).map_err(io_err(&tmp))?;
        let path = model_dir.join(CURRENT);
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        Ok(artifact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, CatalogItem};
    use crate::definition::FeatureParams;

    fn manifest(beats: bool) -> Manifest {
        let catalog = Catalog::new(vec![CatalogItem {
            target_id: "a".into(),
            target_type: "product".into(),
            category: Some("baby".into()),
            price: Some(3.0),
            subcategory: None,
            brand: None,
            topics: vec![],
        }])
        .expect("valid");
        let spec = FeatureParams::default().fit(&catalog).expect("fit");
        Manifest {
            name: "profile".into(),
            version: "profile-2026-01-01T00-00-00Z".into(),
            created_at: DateTime::from_timestamp(1_767_225_600, 0).expect("valid"),
            code_version: "test".into(),
            feature_schema: spec.schema(),
            feature_spec: spec,
            training_data: DataFingerprint {
                files: BTreeMap::new(),
                interactions: 0,
                users: 0,
                as_of: "2026-01-01T00:00:00Z".into(),
            },
            label_vocabularies: BTreeMap::new(),
            models: vec![ModelEntry {
                target: "spendingClass".into(),
                family: Some("logistic_regression".into()),
                skipped: None,
                file: Some("spending_class.json".into()),
                beats_baseline: beats,
            }],
            metrics: serde_json::json!({}),
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn write_load_promote_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let registry = Registry::new(tmp.path());
        let files = vec![("spending_class.json".to_string(), b"{\"w\":[1,2]}".to_vec())];
        let dir = registry.write(manifest(true), &files).expect("write");
        let again = registry.write(manifest(true), &files).expect("write again");
        assert_ne!(dir, again, "versions are never overwritten");
        assert!(again.ends_with("profile-2026-01-01T00-00-00Z-2"));
        assert_eq!(registry.list("profile").expect("list").len(), 2);
        assert_eq!(registry.current("profile").expect("current"), None);
        assert!(matches!(
            registry.load_current("profile"),
            Err(RegistryError::NothingPromoted { .. })
        ));
        registry
            .promote("profile", "profile-2026-01-01T00-00-00Z", false)
            .expect("promote");
        let loaded = registry.load_current("profile").expect("load");
        assert_eq!(
            loaded.file("spending_class.json"),
            Some(&b"{\"w\":[1,2]}"[..])
        );
        assert!(matches!(
            registry.promote("profile", "nope", false),
            Err(RegistryError::UnknownVersion { .. })
        ));
    }

    #[test]
    fn corrupted_and_mismatched_artifacts_are_refused_with_the_reason() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let registry = Registry::new(tmp.path());
        let files = vec![("spending_class.json".to_string(), b"{}".to_vec())];
        let dir = registry.write(manifest(true), &files).expect("write");
        fs::write(dir.join("spending_class.json"), b"{ }").expect("tamper");
        let err = Artifact::load(&dir).expect_err("corrupted").to_string();
        assert!(err.contains("spending_class.json is corrupted"), "{err}");

        let mut other = manifest(true);
        other.version = "other".into();
        other.feature_schema.hash = "sha256:0000".into();
        let dir = registry.write(other, &files).expect("write");
        let err = Artifact::load(&dir).expect_err("mismatch").to_string();
        assert!(err.contains("does not match this build's"), "{err}");

        fs::write(dir.join(MANIFEST), b"{not json").expect("tamper");
        let err = Artifact::load(&dir).expect_err("bad manifest").to_string();
        assert!(err.contains("manifest is not valid"), "{err}");
    }

    #[test]
    fn promote_refuses_models_below_baseline_unless_forced() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let registry = Registry::new(tmp.path());
        let dir = registry.write(manifest(false), &[]).expect("write");
        let version = dir.file_name().expect("name").to_string_lossy().to_string();
        let err = registry
            .promote("profile", &version, false)
            .expect_err("refused");
        assert!(err.to_string().contains("spendingClass"), "{err}");
        assert_eq!(registry.current("profile").expect("current"), None);
        registry.promote("profile", &version, true).expect("forced");
        assert_eq!(registry.current("profile").expect("current"), Some(version));
    }
}
