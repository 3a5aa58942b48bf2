//! The workspace folder `.tug/`: where it is, what it holds, and creating it.
//!
//! A workspace is found by `TUG_WORKSPACE` or by walking up from the current directory
//! to the first folder holding `.tug/`; `tug init` (or first use) creates one in the
//! current directory. Everything tug keeps lives below it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Environment variable naming the workspace folder (the folder that holds `.tug/`,
/// or the `.tug` folder itself).
pub const WORKSPACE_ENV: &str = "TUG_WORKSPACE";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create workspace folder {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the token file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    TokenMode { path: PathBuf, mode: u32 },
}

/// Paths of one workspace. Cheap to clone; holds no open files.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The `.tug` folder.
    pub dir: PathBuf,
}

impl Workspace {
    /// Finds the workspace for `cwd`: `TUG_WORKSPACE` wins, then the nearest ancestor
    /// holding `.tug/`. Returns `None` when there is none.
    pub fn find(cwd: &Path) -> Option<Workspace> {
        if let Some(dir) = std::env::var_os(WORKSPACE_ENV) {
            return Some(Workspace::at(Path::new(&dir)));
        }
        cwd.ancestors()
            .map(|a| a.join(".tug"))
            .find(|p| p.is_dir())
            .map(|dir| Workspace { dir })
    }

    /// The workspace rooted at `root` (a folder holding `.tug`, or `.tug` itself).
    pub fn at(root: &Path) -> Workspace {
        let dir = if root.file_name().is_some_and(|n| n == ".tug") {
            root.to_path_buf()
        } else {
            root.join(".tug")
        };
        Workspace { dir }
    }

    /// Finds the workspace for `cwd` or creates `.tug/` in `cwd` (or at `TUG_WORKSPACE`).
    pub fn find_or_create(cwd: &Path) -> Result<Workspace, Error> {
        let ws = Workspace::find(cwd).unwrap_or_else(|| Workspace::at(cwd));
        ws.create()?;
        Ok(ws)
    }

    /// Creates the folder layout and the token; idempotent.
    pub fn create(&self) -> Result<(), Error> {
        for d in [self.dir.clone(), self.artifacts(), self.snapshots()] {
            fs::create_dir_all(&d).map_err(|source| Error::Create { path: d, source })?;
        }
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
            Error::Create {
                path: self.dir.clone(),
                source,
            }
        })?;
        let token = self.token_path();
        if !token.exists() {
            let value = random_hex(32);
            // Write to a private temporary file, then link it into place: a reader never
            // sees a half-written token, the file is never world-readable, and when several
            // processes create the workspace at once the first link wins and the others
            // keep it (a rename would let a later one replace the token a server already
            // read, locking every client out).
            let tmp = self.dir.join(format!(".token.{}", std::process::id()));
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|source| Error::Create {
                    path: tmp.clone(),
                    source,
                })?;
            let linked = f
                .write_all(value.as_bytes())
                .and_then(|_| f.sync_all())
                .and_then(|_| match fs::hard_link(&tmp, &token) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                    other => other,
                });
            let _ = fs::remove_file(&tmp);
            linked.map_err(|source| Error::Create {
                path: token.clone(),
                source,
            })?;
        }
        let config = self.config_path();
        if !config.exists() {
            fs::write(&config, DEFAULT_CONFIG).map_err(|source| Error::Create {
                path: config.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// The API token, checking that only the owner can read it.
    pub fn token(&self) -> Result<String, Error> {
        let path = self.token_path();
        let meta = fs::metadata(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::TokenMode { path, mode });
        }
        let text = fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        Ok(text.trim().to_string())
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("tug.db")
    }
    pub fn token_path(&self) -> PathBuf {
        self.dir.join("token")
    }
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }
    /// The parsed `config.yaml` (defaults when the file is missing).
    pub fn read_config(
        &self,
    ) -> Result<crate::compute::config::WorkspaceConfig, crate::compute::config::Error> {
        let path = self.config_path();
        let text = fs::read_to_string(&path).unwrap_or_default();
        crate::compute::config::WorkspaceConfig::parse(&path.display().to_string(), &text)
    }
    /// Remote data fetched for job inputs (see `datastore::cache`).
    pub fn data_cache(&self) -> crate::datastore::DataCache {
        crate::datastore::DataCache::new(self.dir.join("cache/data"))
    }
    pub fn artifacts(&self) -> PathBuf {
        self.dir.join("artifacts")
    }
    /// Content-addressed code and build-context snapshots (`<sha256>.tar`).
    pub fn snapshots(&self) -> PathBuf {
        self.artifacts().join("snapshots")
    }
    /// Everything one run leaves behind: logs, outputs, named outputs.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.artifacts().join("runs").join(run_id)
    }
    /// Where a running server says how to reach it.
    pub fn server_file(&self) -> PathBuf {
        self.dir.join("server.json")
    }
    /// Held (flock) by the one server of this workspace while it runs.
    pub fn server_lock(&self) -> PathBuf {
        self.dir.join("server.lock")
    }
    /// Held by a CLI while it starts a server, so two CLIs never start two.
    pub fn spawn_lock(&self) -> PathBuf {
        self.dir.join("spawn.lock")
    }
    pub fn server_log(&self) -> PathBuf {
        self.dir.join("server.log")
    }
}

const DEFAULT_CONFIG: &str = "\
# tug workspace configuration.
# Compute targets beyond the always-present `local` Docker engine, e.g.
#   compute:
#     gpu-box:
#       type: docker
#       instance_types:
#         small: {cpu: 1, memory: 2Gi}
#         big:   {cpu: 4, memory: 16Gi, gpu: 1}
compute: {}
# Azure's curated environments (`azureml:AzureML-sklearn-1.5@latest`,
# `azureml://registries/azureml/environments/...`) mapped to local ones, before the built-in
# stand-ins (`tug environment list --curated` shows the whole map), e.g.
#   curated:
#     pytorch-*: {environment: azureml:my-torch@latest}
#     sklearn-1.5: {image: my-sklearn:1.5}
# Local images that stand in for public ones this machine cannot pull (an environment's
# `image:`; a key may end in `*`), e.g.
#   images:
#     \"python:*\": tug/python:3.11-minimal
#     \"mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:*\": tug/python:3.11-sklearn
# What `azureml://datastores/<name>/paths/...` inputs stand for, e.g.
#   datastores:
#     lake: {url: s3://team-bucket/raw}
#     azure_examples: {url: wasbs://datasets@azuremlexamples.blob.core.windows.net}
";

/// `n` random bytes from the kernel, hex-encoded.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // /dev/urandom never blocks after boot and is all this needs.
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .expect("reading /dev/urandom");
    hex(&buf)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_layout_and_private_token() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = Workspace::at(tmp.path());
        ws.create().unwrap();
        let token = ws.token().unwrap();
        assert_eq!(token.len(), 64);
        let mode = fs::metadata(ws.token_path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        ws.create().unwrap();
        assert_eq!(ws.token().unwrap(), token, "create is idempotent");
    }

    #[test]
    fn refuses_world_readable_token() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = Workspace::at(tmp.path());
        ws.create().unwrap();
        fs::set_permissions(ws.token_path(), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(ws.token(), Err(Error::TokenMode { .. })));
    }

    #[test]
    fn finds_workspace_in_ancestor() {
        let tmp = tempfile::tempdir().unwrap();
        Workspace::at(tmp.path()).create().unwrap();
        let deep = tmp.path().join("a/b");
        fs::create_dir_all(&deep).unwrap();
        if std::env::var_os(WORKSPACE_ENV).is_none() {
            let ws = Workspace::find(&deep).unwrap();
            assert_eq!(ws.dir, tmp.path().join(".tug"));
        }
    }
}
