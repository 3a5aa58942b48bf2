//! A step's [`Fingerprint`] from what it will run with: [`assemble`] is pure (the step's
//! resolved job plus the hashes read for it); the file hashing around it is the I/O edge,
//! used by the controller and `tug job plan` alike.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::model::StepSubmission;
use super::reuse::{DataContent, Fingerprint};
use crate::run::model::{InputBinding, JobSubmission};

/// The fingerprint of `step` run as `job` (its bound inputs resolved or not): `environment`
/// is the image's content hash, `code` the snapshot's files, `data` each data input's files
/// (or the upstream step it waits for).
pub fn assemble(
    step: &StepSubmission,
    job: &JobSubmission,
    environment: String,
    code: BTreeMap<String, String>,
    data: BTreeMap<String, DataContent>,
) -> Fingerprint {
    let literals = job
        .inputs
        .iter()
        .filter_map(|(name, i)| match i {
            InputBinding::Literal { text } => Some((name.clone(), text.clone())),
            InputBinding::Data { .. } => None,
        })
        .collect();
    // Values enter by hash: the stored fingerprint must not hold a value in the clear.
    let environment_variables = job
        .environment_variables
        .iter()
        .map(|(k, v)| (k.clone(), crate::snapshot::sha256_hex(v.as_bytes())))
        .collect();
    let outputs = job
        .outputs
        .iter()
        .map(|(name, o)| {
            let kind = if o.is_file { "uri_file" } else { "uri_folder" };
            let mut text = format!("{kind} at {}", o.container_path);
            if let Some(dest) = &o.datastore_path {
                text.push_str(&format!(", copied to {dest}"));
            }
            (name.clone(), text)
        })
        .collect();
    Fingerprint {
        command: step.command_template.clone(),
        code,
        environment,
        environment_variables,
        literals,
        data,
        outputs,
        sweep: step.sweep.as_ref().map(sweep_settings).unwrap_or_default(),
    }
}

/// A sweep step's settings, one entry each (a search-space dimension on its own), so a
/// rerun names the one that changed.
fn sweep_settings(s: &crate::sweep::SweepSettings) -> BTreeMap<String, String> {
    let json = |v: serde_json::Value| v.to_string();
    let mut out: BTreeMap<String, String> = s
        .search_space
        .iter()
        .map(|(name, d)| {
            (
                format!("search_space.{name}"),
                json(serde_json::to_value(d).unwrap_or_default()),
            )
        })
        .collect();
    out.insert(
        "sampling_algorithm".into(),
        json(serde_json::to_value(&s.sampling_algorithm).unwrap_or_default()),
    );
    out.insert(
        "objective".into(),
        json(serde_json::to_value(&s.objective).unwrap_or_default()),
    );
    // The sweep's time budget is left out: a sweep that ran out of it did not complete,
    // and so is never reused; one that completed is what a longer budget would give.
    let limits = crate::sweep::SweepLimits {
        timeout_seconds: None,
        ..s.limits
    };
    out.insert(
        "limits".into(),
        json(serde_json::to_value(limits).unwrap_or_default()),
    );
    if let Some(rule) = &s.early_termination {
        out.insert(
            "early_termination".into(),
            json(serde_json::to_value(rule).unwrap_or_default()),
        );
    }
    out
}

/// `relative path → sha256` of every regular file under `path` (a file alone is one entry,
/// its own name). Symbolic links are hashed as their target path.
pub fn hash_tree(path: &Path) -> std::io::Result<BTreeMap<String, String>> {
    hash_tree_with(path, &mut |p: &Path| hash_file(p))
}

fn hash_tree_with(
    path: &Path,
    hash: &mut dyn FnMut(&Path) -> std::io::Result<String>,
) -> std::io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.insert(name, hash(path)?);
        return Ok(out);
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let p = entry.path();
            let rel = p
                .strip_prefix(path)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(p);
            } else if ty.is_symlink() {
                let target = std::fs::read_link(&p)?;
                let text = format!("symlink:{}", target.display());
                out.insert(rel, crate::snapshot::sha256_hex(text.as_bytes()));
            } else if ty.is_file() {
                out.insert(rel, hash(&p)?);
            }
        }
    }
    Ok(out)
}

/// File hashes remembered by path, size and modification time (as git and make tell a
/// changed file), and code snapshots by their own hash: a plan of many steps over the
/// same data hashes it once. Shared by clones.
#[derive(Clone, Default)]
pub struct HashCache {
    files: Arc<Mutex<HashMap<PathBuf, Stamped>>>,
    snapshots: Arc<Mutex<HashMap<String, BTreeMap<String, String>>>>,
}

/// A file's hash with the size and modification time it was read at.
type Stamped = (u64, SystemTime, String);

/// Snapshots kept; each is a few kilobytes of hashes.
const SNAPSHOTS_KEPT: usize = 256;
/// File hashes kept (about 200 bytes each): past it the cache starts again, so a server
/// that sees millions of data files over its life holds tens of megabytes at most.
const FILES_KEPT: usize = 200_000;

impl HashCache {
    /// [`hash_tree`], with unchanged files answered from memory.
    pub fn tree(&self, path: &Path) -> std::io::Result<BTreeMap<String, String>> {
        hash_tree_with(path, &mut |p: &Path| {
            let meta = std::fs::metadata(p)?;
            let stamp = (meta.len(), meta.modified()?);
            if let Some((len, at, hash)) = self.files.lock().unwrap().get(p)
                && (*len, *at) == stamp
            {
                return Ok(hash.clone());
            }
            let hash = hash_file(p)?;
            let mut files = self.files.lock().unwrap();
            if files.len() >= FILES_KEPT {
                files.clear();
            }
            files.insert(p.to_path_buf(), (stamp.0, stamp.1, hash.clone()));
            Ok(hash)
        })
    }

    pub fn snapshot(&self, sha: &str) -> Option<BTreeMap<String, String>> {
        self.snapshots.lock().unwrap().get(sha).cloned()
    }

    pub fn remember_snapshot(&self, sha: &str, files: &BTreeMap<String, String>) {
        let mut map = self.snapshots.lock().unwrap();
        if map.len() >= SNAPSHOTS_KEPT {
            map.clear();
        }
        map.insert(sha.to_string(), files.clone());
    }
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::workspace::hex(&h.finalize()))
}

/// `path → sha256` of every file of a code snapshot (a tar as uploaded).
pub fn hash_snapshot(tar: &[u8]) -> std::io::Result<BTreeMap<String, String>> {
    Ok(crate::snapshot::entries_from_tar(tar)?
        .into_iter()
        .filter_map(|e| e.data.map(|d| (e.path, crate::snapshot::sha256_hex(&d))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::model::{OutputBinding, ResolvedEnvironment};

    fn step(command: &str) -> StepSubmission {
        let job = JobSubmission {
            name: None,
            display_name: None,
            experiment_name: "e".into(),
            description: None,
            tags: BTreeMap::from([("t".into(), "1".into())]),
            command: format!("{command} --lr 0.1"),
            code_snapshot: None,
            environment: ResolvedEnvironment::Image {
                image: "x".into(),
                conda_file: None,
                pip_requirements: vec![],
            },
            environment_variables: BTreeMap::from([("TOKEN".into(), "s3cret".into())]),
            compute: "local".into(),
            inputs: BTreeMap::from([("lr".into(), InputBinding::Literal { text: "0.1".into() })]),
            outputs: BTreeMap::from([(
                "model".into(),
                OutputBinding {
                    container_path: "/tug/outputs/model".into(),
                    is_file: false,
                    datastore_path: None,
                },
            )]),
            resources: Default::default(),
            timeout_seconds: None,
            source: None,
        };
        StepSubmission {
            job,
            command_template: command.into(),
            bound: BTreeMap::new(),
            is_deterministic: true,
            component: None,
            sweep: None,
        }
    }

    #[test]
    fn the_fingerprint_holds_what_the_result_depends_on_and_no_value_in_the_clear() {
        let s = step("python train.py --lr ${{inputs.lr}}");
        let fp = assemble(&s, &s.job, "env1".into(), BTreeMap::new(), BTreeMap::new());
        assert_eq!(fp.command, "python train.py --lr ${{inputs.lr}}");
        assert_eq!(fp.literals["lr"], "0.1");
        assert_eq!(fp.outputs["model"], "uri_folder at /tug/outputs/model");
        let json = serde_json::to_string(&fp).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
        // Tags and compute are left out: the same step elsewhere gives the same result.
        let mut other = s.clone();
        other.job.tags.clear();
        other.job.compute = "k8s".into();
        let fp2 = assemble(
            &other,
            &other.job,
            "env1".into(),
            BTreeMap::new(),
            BTreeMap::new(),
        );
        assert_eq!(fp.key(), fp2.key());
        // A variable's value does enter.
        other
            .job
            .environment_variables
            .insert("TOKEN".into(), "other".into());
        let fp3 = assemble(
            &other,
            &other.job,
            "env1".into(),
            BTreeMap::new(),
            BTreeMap::new(),
        );
        assert_ne!(fp.key(), fp3.key());
    }

    #[test]
    fn trees_hash_by_relative_path_and_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/x.csv"), "1,2\n").unwrap();
        std::fs::write(dir.path().join("top.txt"), "hi").unwrap();
        let t = hash_tree(dir.path()).unwrap();
        assert_eq!(t.keys().collect::<Vec<_>>(), ["a/b/x.csv", "top.txt"]);
        assert_eq!(t["top.txt"], crate::snapshot::sha256_hex(b"hi"));
        let one = hash_tree(&dir.path().join("top.txt")).unwrap();
        assert_eq!(one.keys().collect::<Vec<_>>(), ["top.txt"]);
        std::fs::write(dir.path().join("top.txt"), "ho").unwrap();
        assert_ne!(hash_tree(dir.path()).unwrap()["top.txt"], t["top.txt"]);
    }
}
