//! Compute targets: where run containers execute. `docker` is the local engine;
//! Kubernetes implements the same trait next.

pub mod collect;
pub mod config;
pub mod docker;
pub mod logline;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

use futures_util::stream::BoxStream;

/// Label keys on every container tug creates.
pub mod labels {
    pub const WORKSPACE: &str = "tug.workspace";
    pub const RUN: &str = "tug.run";
    pub const ROLE: &str = "tug.role";
}

/// Everything a target needs to start one run's container. Built purely from the
/// stored run (see `run::lifecycle::container_spec`).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub workspace_id: String,
    pub run_id: String,
    pub image: String,
    /// Run through `/bin/sh -c` in `working_dir`.
    pub command: String,
    pub working_dir: String,
    pub env: BTreeMap<String, String>,
    /// Numeric `uid:gid`, or `None` to keep the image's user.
    pub user: Option<String>,
    /// Files to place before start: a tar extracted at `/`.
    pub files_tar: Vec<u8>,
    /// (host path, container path) mounted read-only.
    pub ro_mounts: Vec<(String, String)>,
    pub limits: Limits,
    /// Folders collected into the run's artifacts at the end: (container path, name under the run folder).
    pub collect: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub nano_cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub shm_bytes: Option<i64>,
    pub gpus: Option<i64>,
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
    #[error("Docker engine error while {doing}: {source}")]
    Engine {
        doing: String,
        source: bollard::errors::Error,
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
    fn start(&self, spec: &ContainerSpec) -> impl Future<Output = Result<(), Error>> + Send;
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

impl Error {
    /// The target did not answer at all (engine down or restarting), as opposed to
    /// answering with an error.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Error::Engine { source, .. }
                if !matches!(source, bollard::errors::Error::DockerResponseServerError { .. })
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
