//! The model registry: turning an uploaded file or folder, or a run's output, into a new
//! model version under `artifacts/models/<name>/<version>/`, and resolving references to it.
//!
//! A version appears whole or not at all: files are materialised in a temporary folder and
//! renamed into place before the record is stored, and removed again if storing fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::snapshot;
use crate::store::{self, ModelRecord, Store};
use crate::workspace::{Workspace, random_hex};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(
        "`{name}` is not a valid model name: use letters, digits, `-` and `_`, starting with a letter or digit, at most 255 characters"
    )]
    BadName { name: String },
    #[error(
        "model version `{0}` is not a positive whole number; omit `version:` to get the next one"
    )]
    BadVersion(String),
    #[error("run `{run}` has no output `{path}`; `tug job download {run}` shows what it produced")]
    NoRunOutput { run: String, path: String },
    #[error("no uploaded snapshot {0}; upload the model again")]
    NoSnapshot(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "`{0}` is not a model reference; write `azureml:<name>:<version>` or `azureml:<name>@latest`"
    )]
    BadReference(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Where a new model version's files come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelOrigin {
    /// A tar the CLI uploaded to `/api/snapshots`; its entries sit below `artifact/`
    /// (a folder) or are the single file `artifact`.
    Upload {
        snapshot: String,
        artifact: String,
        is_file: bool,
    },
    /// A file or folder below a run's collected artifacts (`outputs/model.pkl`,
    /// `named-outputs/model`).
    RunOutput { run_id: String, path: String },
}

/// A request to register a model version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRequest {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default = "custom_model")]
    pub model_type: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub flavors: Option<serde_json::Value>,
    #[serde(default)]
    pub stage: Option<String>,
    /// The path as the user wrote it, kept for `model show`.
    pub source: String,
    pub origin: ModelOrigin,
}

fn custom_model() -> String {
    "custom_model".into()
}

/// Azure's model-name rule (the spec module's, so files and flags agree).
pub fn valid_name(name: &str) -> bool {
    crate::spec::valid_model_name(name)
}

/// The folder holding a version's files.
pub fn version_dir(ws: &Workspace, name: &str, version: &str) -> PathBuf {
    ws.artifacts().join("models").join(name).join(version)
}

/// The registered file or folder itself (what `AZUREML_MODEL_DIR` holds).
pub fn artifact_path(ws: &Workspace, rec: &ModelRecord) -> PathBuf {
    version_dir(ws, &rec.name, &rec.version).join(&rec.artifact)
}

/// Registers a new version: validates, materialises the files, stores the record.
pub fn register(ws: &Workspace, store: &Store, req: ModelRequest) -> Result<ModelRecord> {
    if !valid_name(&req.name) {
        return Err(Error::BadName { name: req.name });
    }
    let version = match &req.version {
        Some(v) if v.parse::<u64>().is_ok_and(|n| n > 0) => v.clone(),
        Some(v) => return Err(Error::BadVersion(v.clone())),
        None => store.next_model_version(&req.name)?,
    };
    if store.model(&req.name, Some(&version))?.is_some() {
        return Err(store::Error::ModelExists {
            name: req.name,
            version,
        }
        .into());
    }
    let (mut job_id, mut experiment) = (None, None);
    let models = ws.artifacts().join("models");
    std::fs::create_dir_all(&models).map_err(io("creating the model folder"))?;
    let staging = models.join(format!(".staging-{}", random_hex(6)));
    let cleanup = scopeguard(&staging);
    let (artifact, is_file) = match &req.origin {
        ModelOrigin::Upload {
            snapshot: sha,
            artifact,
            is_file,
        } => {
            let tar = ws.snapshots().join(format!("{sha}.tar"));
            let bytes = std::fs::read(&tar).map_err(|_| Error::NoSnapshot(sha.clone()))?;
            let mut entries =
                snapshot::entries_from_tar(&bytes).map_err(io("reading the upload"))?;
            entries.retain(|e| e.path == *artifact || e.path.starts_with(&format!("{artifact}/")));
            write_entries(&staging, &entries)?;
            (artifact.clone(), *is_file)
        }
        ModelOrigin::RunOutput { run_id, path } => {
            let run = store.run(run_id)?;
            job_id = Some(run.id.clone());
            experiment = Some(run.experiment.clone());
            let clean = clean_relative(path).ok_or_else(|| Error::NoRunOutput {
                run: run_id.clone(),
                path: path.clone(),
            })?;
            let from = ws.run_dir(run_id).join(&clean);
            let meta = std::fs::metadata(&from).map_err(|_| Error::NoRunOutput {
                run: run_id.clone(),
                path: path.clone(),
            })?;
            let name = from
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into());
            std::fs::create_dir_all(&staging).map_err(io("creating the staging folder"))?;
            copy_tree(&from, &staging.join(&name))?;
            (name, meta.is_file())
        }
    };
    let (sha256, size) = content_hash(&staging, &artifact)?;
    let dest = version_dir(ws, &req.name, &version);
    std::fs::create_dir_all(dest.parent().expect("has a parent"))
        .map_err(io("creating the model folder"))?;
    if dest.exists() {
        // Left by a registration that stored no record (a crash between rename and insert).
        std::fs::remove_dir_all(&dest).map_err(io(format!("clearing {}", dest.display())))?;
    }
    std::fs::rename(&staging, &dest)
        .map_err(io(format!("moving the model into {}", dest.display())))?;
    drop(cleanup);
    let rec = ModelRecord {
        name: req.name,
        version,
        model_type: req.model_type,
        description: req.description,
        tags: req.tags,
        properties: req.properties,
        flavors: req.flavors,
        stage: req.stage,
        source: req.source,
        artifact,
        is_file,
        sha256,
        size,
        job_id,
        experiment,
        archived: false,
        created_at: store::now(),
    };
    if let Err(e) = store.insert_model(&rec) {
        let _ = std::fs::remove_dir_all(&dest);
        return Err(e.into());
    }
    Ok(rec)
}

/// Removes a staging folder unless disarmed by dropping after a successful rename
/// (a renamed folder no longer exists at the old path, so the removal is a no-op).
struct StagingGuard(PathBuf);

impl Drop for StagingGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scopeguard(path: &Path) -> StagingGuard {
    StagingGuard(path.to_path_buf())
}

/// `a/b/../c` style paths are refused; only plain components are kept.
fn clean_relative(path: &str) -> Option<PathBuf> {
    use std::path::Component;
    let p = Path::new(path.trim_matches('/'));
    let ok = p.components().all(|c| matches!(c, Component::Normal(_)));
    (ok && !p.as_os_str().is_empty()).then(|| p.to_path_buf())
}

fn write_entries(root: &Path, entries: &[snapshot::Entry]) -> Result<()> {
    std::fs::create_dir_all(root).map_err(io("creating the staging folder"))?;
    for e in entries {
        let rel = clean_relative(&e.path).ok_or_else(|| Error::Io {
            what: format!("unpacking {}", e.path),
            source: std::io::Error::other("path leaves the model folder"),
        })?;
        let dest = root.join(rel);
        match &e.data {
            None => std::fs::create_dir_all(&dest),
            Some(data) => dest
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| std::fs::write(&dest, data)),
        }
        .map_err(io(format!("writing {}", dest.display())))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::metadata(from).map_err(io(format!("reading {}", from.display())))?;
    if meta.is_file() {
        std::fs::copy(from, to).map_err(io(format!("copying {}", from.display())))?;
        return Ok(());
    }
    std::fs::create_dir_all(to).map_err(io(format!("creating {}", to.display())))?;
    let mut names: Vec<_> = std::fs::read_dir(from)
        .map_err(io(format!("reading {}", from.display())))?
        .filter_map(|e| e.ok())
        .collect();
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        copy_tree(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}

/// sha256 of the deterministic tar of `root/artifact`, and the total file size.
fn content_hash(root: &Path, artifact: &str) -> Result<(String, u64)> {
    let entries = artifact_entries(root, artifact)?;
    let size = entries
        .iter()
        .filter_map(|e| e.data.as_ref())
        .map(|d| d.len() as u64)
        .sum();
    Ok((
        snapshot::sha256_hex(&snapshot::tar_bytes(&entries, "", 0, 0)),
        size,
    ))
}

/// The artifact's files as tar entries whose paths start with the artifact's name.
fn artifact_entries(root: &Path, artifact: &str) -> Result<Vec<snapshot::Entry>> {
    let path = root.join(artifact);
    if path.is_file() {
        let data = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
        return Ok(vec![snapshot::Entry {
            path: artifact.to_string(),
            data: Some(data),
            executable: false,
        }]);
    }
    let mut entries = snapshot::read_tree(&path).map_err(|e| Error::Io {
        what: format!("reading {}", path.display()),
        source: std::io::Error::other(e.to_string()),
    })?;
    for e in &mut entries {
        e.path = format!("{artifact}/{}", e.path);
    }
    entries.push(snapshot::Entry {
        path: artifact.to_string(),
        data: None,
        executable: false,
    });
    Ok(entries)
}

/// A version's files as a tar (the artifact's name first in every path), for download
/// and for building scoring images.
pub fn model_tar(ws: &Workspace, rec: &ModelRecord) -> Result<Vec<u8>> {
    let entries = artifact_entries(&version_dir(ws, &rec.name, &rec.version), &rec.artifact)?;
    Ok(snapshot::tar_bytes(&entries, "", 0, 0))
}

/// A parsed model reference: `azureml:<name>:<version>`, `azureml:<name>@latest`, or the
/// same without the `azureml:` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub name: String,
    /// `None` = latest.
    pub version: Option<String>,
}

/// The record a reference names.
pub fn resolve(store: &Store, reference: &ModelRef) -> Result<ModelRecord> {
    store
        .model(&reference.name, reference.version.as_deref())?
        .ok_or_else(|| {
            let label = match &reference.version {
                Some(v) => format!("{}:{v}", reference.name),
                None => format!("{}@latest", reference.name),
            };
            store::Error::NoModel(label).into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_azure_asset_rules() {
        assert!(valid_name("digits-model_v1"));
        assert!(!valid_name("-digits"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
    }

    #[test]
    fn relative_paths_cannot_climb() {
        assert!(clean_relative("outputs/model.pkl").is_some());
        assert!(clean_relative("/outputs/").is_some());
        assert!(clean_relative("../x").is_none());
        assert!(clean_relative("a/../../x").is_none());
        assert!(clean_relative("").is_none());
    }

    fn store_with_run(ws: &Workspace) -> Store {
        ws.create().unwrap();
        Store::open(&ws.db_path()).unwrap()
    }

    #[test]
    fn versions_increase_and_latest_skips_archived() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::at(dir.path());
        let store = store_with_run(&ws);
        let src = dir.path().join("m.pkl");
        std::fs::write(&src, b"weights").unwrap();
        let tar = snapshot::tar_bytes(
            &[snapshot::Entry {
                path: "m.pkl".into(),
                data: Some(b"weights".to_vec()),
                executable: false,
            }],
            "",
            0,
            0,
        );
        let sha = snapshot::sha256_hex(&tar);
        std::fs::create_dir_all(ws.snapshots()).unwrap();
        std::fs::write(ws.snapshots().join(format!("{sha}.tar")), &tar).unwrap();
        let req = ModelRequest {
            name: "digits".into(),
            version: None,
            model_type: custom_model(),
            description: None,
            tags: BTreeMap::new(),
            properties: BTreeMap::new(),
            flavors: None,
            stage: None,
            source: "m.pkl".into(),
            origin: ModelOrigin::Upload {
                snapshot: sha,
                artifact: "m.pkl".into(),
                is_file: true,
            },
        };
        let v1 = register(&ws, &store, req.clone()).unwrap();
        let v2 = register(&ws, &store, req.clone()).unwrap();
        assert_eq!((v1.version.as_str(), v2.version.as_str()), ("1", "2"));
        assert_eq!(v1.sha256, v2.sha256);
        assert_eq!(std::fs::read(artifact_path(&ws, &v2)).unwrap(), b"weights");
        let explicit = ModelRequest {
            version: Some("2".into()),
            ..req.clone()
        };
        assert!(matches!(
            register(&ws, &store, explicit),
            Err(Error::Store(store::Error::ModelExists { .. }))
        ));
        store.set_model_archived("digits", "2", true).unwrap();
        let latest = resolve(
            &store,
            &ModelRef {
                name: "digits".into(),
                version: None,
            },
        )
        .unwrap();
        assert_eq!(latest.version, "1");
        // An archived version still resolves by number, as in Azure.
        let two = ModelRef {
            name: "digits".into(),
            version: Some("2".into()),
        };
        assert!(resolve(&store, &two).is_ok());
        // No staging folders are left behind.
        let left: Vec<_> = std::fs::read_dir(ws.artifacts().join("models"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".staging"))
            .collect();
        assert!(left.is_empty());
    }

    #[test]
    fn a_missing_run_output_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::at(dir.path());
        let store = store_with_run(&ws);
        let req = ModelRequest {
            name: "digits".into(),
            version: None,
            model_type: custom_model(),
            description: None,
            tags: BTreeMap::new(),
            properties: BTreeMap::new(),
            flavors: None,
            stage: None,
            source: "runs:/nope/outputs/model.pkl".into(),
            origin: ModelOrigin::RunOutput {
                run_id: "nope".into(),
                path: "outputs/model.pkl".into(),
            },
        };
        assert!(register(&ws, &store, req).is_err());
        assert!(store.models(None, true).unwrap().is_empty());
    }
}
