//! Compute targets: where run containers execute. A run is described once, as a pure
//! [`RunSpec`]; [`docker`] (the local engine) and [`kubernetes`] (a cluster) each apply
//! it. Which target a run uses is a value (its `compute:` name, looked up in the
//! workspace config), resolved to a [`Target`] per run.

pub mod collect;
pub mod config;
pub mod docker;
pub mod kubernetes;
pub mod logline;
pub mod targets;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;

use futures_util::stream::BoxStream;

use crate::snapshot::{Entry, tar_bytes_with_dir_mode};

/// Label keys on every container tug creates.
pub mod labels {
    pub const WORKSPACE: &str = "tug.workspace";
    pub const RUN: &str = "tug.run";
    pub const ROLE: &str = "tug.role";
}

/// Everything a target needs to run one run's container, said once for every target.
/// Built purely from the stored run (see `run::plan::container_spec`); each target maps
/// it onto its own objects (a Docker container, a Kubernetes Job).
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    pub workspace_id: String,
    pub run_id: String,
    pub image: String,
    /// Run through `/bin/sh -c` in `working_dir`.
    pub command: String,
    pub working_dir: String,
    pub env: BTreeMap<String, String>,
    /// Names in `env` whose values are decrypted secrets: a target that keeps objects
    /// others can read (Kubernetes) puts these in a Secret rather than in the object.
    pub secret_env: BTreeSet<String>,
    /// Numeric `uid:gid`, or `None` to keep the image's user.
    pub user: Option<String>,
    /// Files and folders placed under `/` before the command starts (all under
    /// `run::model::paths::ROOT`), owned by `owner`, folders of mode `dir_mode`.
    pub files: Vec<Entry>,
    pub owner: (u64, u64),
    pub dir_mode: u32,
    /// Host folders or files mounted read-only (inputs with `mode: ro_mount`).
    pub mounts: Vec<HostMount>,
    pub limits: Limits,
    /// Folders collected into the run's artifacts at the end: (container path, name under the run folder).
    pub collect: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostMount {
    pub host: String,
    pub container: String,
}

impl RunSpec {
    /// `files` as a tar to extract at `/`.
    pub fn files_tar(&self) -> Vec<u8> {
        tar_bytes_with_dir_mode(&self.files, "", self.owner.0, self.owner.1, self.dir_mode)
    }

    /// `files` below `root` (an absolute folder), as a tar to extract in `root`: what a
    /// target that mounts a fresh volume at `root` delivers (the folder itself is the
    /// mount, so it is left out).
    pub fn files_tar_under(&self, root: &str) -> Vec<u8> {
        let root = root.trim_matches('/');
        let entries: Vec<Entry> = self
            .files
            .iter()
            .filter_map(|e| {
                let rest = e.path.strip_prefix(root)?.strip_prefix('/')?;
                Some(Entry {
                    path: rest.to_string(),
                    ..e.clone()
                })
            })
            .collect();
        tar_bytes_with_dir_mode(&entries, "", self.owner.0, self.owner.1, self.dir_mode)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub nano_cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub shm_bytes: Option<i64>,
    pub gpus: Option<i64>,
    /// What a Kubernetes pod requests (the limits when absent); Docker has no requests.
    pub cpu_request_nanos: Option<i64>,
    pub memory_request_bytes: Option<i64>,
    /// Where a Kubernetes pod may be scheduled (ignored on Docker).
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<config::Toleration>,
}

/// One line of container output, with the engine's timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// RFC 3339 with nanoseconds, normalised to 9 fraction digits so it sorts.
    pub ts: String,
    pub text: String,
}

/// What a target knows of a run's container.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerState {
    Running,
    /// Created or exited with this code.
    Exited(i64),
    Created,
    Missing,
}

pub type LogStream = BoxStream<'static, Result<LogLine, Error>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target answered with an error, or did not answer (`unreachable`: an engine or
    /// API server down or restarting).
    #[error("{target} error while {doing}: {detail}")]
    Target {
        target: String,
        doing: String,
        detail: String,
        unreachable: bool,
    },
    #[error("cannot write run artifacts to {path}: {source}")]
    Collect {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Output(#[from] collect::CollectError),
    #[error("{0}")]
    Unsupported(String),
}

/// A place run containers execute. Names are derived from run ids, so every method
/// is safe to call again after a crash: it finds what an earlier attempt made.
pub trait ComputeTarget: Send + Sync {
    /// The name of the run's container (or Kubernetes object) on this target.
    fn container_name(&self, run_id: &str) -> String;
    /// Creates (if needed) and starts the run's container.
    fn start(&self, spec: &RunSpec) -> impl Future<Output = Result<(), Error>> + Send;
    /// Follows the container's output from after `cursor` (a `LogLine::ts`) until it exits.
    fn logs(&self, run_id: &str, cursor: Option<&str>) -> LogStream;
    /// Waits for the container to exit; returns its exit code.
    fn wait(&self, run_id: &str) -> impl Future<Output = Result<i64, Error>> + Send;
    fn state(&self, run_id: &str) -> impl Future<Output = Result<ContainerState, Error>> + Send;
    /// Stops the container (TERM, then KILL after a grace period).
    fn stop(&self, run_id: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// Copies `spec.collect` folders into `dest` (a run's artifact folder).
    fn collect(
        &self,
        run_id: &str,
        collect: &[(String, String)],
        dest: &Path,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    fn remove(&self, run_id: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// Run ids of every container of this workspace the target holds.
    fn list(&self) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
    /// Waits up to `within` for the target to answer again (an engine being restarted);
    /// `true` once it does.
    fn reachable(&self, within: std::time::Duration) -> impl Future<Output = bool> + Send;
}

/// How long a run waits for a target that stopped answering (an engine restart, an API
/// server going away) to come back before it is judged lost.
pub const BACK_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

/// One configured target, chosen per run from its `compute:` name.
#[derive(Clone)]
pub enum Target {
    Docker(docker::DockerTarget),
    Kubernetes(kubernetes::KubeTarget),
}

macro_rules! dispatch {
    ($self:ident, $t:ident => $e:expr) => {
        match $self {
            Target::Docker($t) => $e,
            Target::Kubernetes($t) => $e,
        }
    };
}

impl ComputeTarget for Target {
    fn container_name(&self, run_id: &str) -> String {
        dispatch!(self, t => t.container_name(run_id))
    }
    async fn start(&self, spec: &RunSpec) -> Result<(), Error> {
        dispatch!(self, t => t.start(spec).await)
    }
    fn logs(&self, run_id: &str, cursor: Option<&str>) -> LogStream {
        dispatch!(self, t => t.logs(run_id, cursor))
    }
    async fn wait(&self, run_id: &str) -> Result<i64, Error> {
        dispatch!(self, t => t.wait(run_id).await)
    }
    async fn state(&self, run_id: &str) -> Result<ContainerState, Error> {
        dispatch!(self, t => t.state(run_id).await)
    }
    async fn stop(&self, run_id: &str) -> Result<(), Error> {
        dispatch!(self, t => t.stop(run_id).await)
    }
    async fn collect(
        &self,
        run_id: &str,
        collect: &[(String, String)],
        dest: &Path,
    ) -> Result<(), Error> {
        dispatch!(self, t => t.collect(run_id, collect, dest).await)
    }
    async fn remove(&self, run_id: &str) -> Result<(), Error> {
        dispatch!(self, t => t.remove(run_id).await)
    }
    async fn list(&self) -> Result<Vec<String>, Error> {
        dispatch!(self, t => t.list().await)
    }
    async fn reachable(&self, within: std::time::Duration) -> bool {
        dispatch!(self, t => t.reachable(within).await)
    }
}

impl Error {
    /// The target did not answer at all (engine down or restarting), as opposed to
    /// answering with an error.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Error::Target {
                unreachable: true,
                ..
            }
        )
    }
}

/// Normalises an RFC 3339 timestamp to 9 fraction digits so timestamps compare as strings.
pub fn normalize_ts(ts: &str) -> String {
    let Some(body) = ts.strip_suffix('Z') else {
        return ts.to_string();
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    format!("{whole}.{frac:0<9}Z")
}

/// Seconds since the epoch of a normalised timestamp (for the engine's `since`).
pub fn ts_unix_seconds(ts: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(ts).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_normalise_and_sort() {
        let a = normalize_ts("2026-11-28T19:00:00.5Z");
        let b = normalize_ts("2026-11-28T19:00:00.123456789Z");
        assert_eq!(a, "2026-11-28T19:00:00.500000000Z");
        assert!(b < a);
        assert_eq!(
            normalize_ts("2026-11-28T19:00:01Z"),
            "2026-11-28T19:00:01.000000000Z"
        );
        assert_eq!(ts_unix_seconds(&a), Some(1795892400));
    }
}
