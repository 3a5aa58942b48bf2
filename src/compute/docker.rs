//! The Docker engine as a compute target: a thin mapping from run intents to engine
//! calls, in the manner of bollard itself.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions, UploadToContainerOptions, WaitContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};

use super::collect::{Budget, CollectLimits, unpack_spool};
use super::logline::LineAssembler;
use super::{ComputeTarget, ContainerState, Error, LogStream, RunSpec, labels};

/// Seconds between TERM and KILL when stopping a run.
const STOP_GRACE_SECONDS: i32 = 10;

/// The local (or a remote) Docker engine.
#[derive(Clone)]
pub struct DockerTarget {
    docker: Docker,
    workspace_id: String,
}

/// Maps an engine error to the target-neutral one; anything but an HTTP answer from the
/// engine means it did not answer.
pub fn engine(doing: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Error {
    let doing = doing.into();
    move |source| Error::Target {
        target: "Docker engine".into(),
        doing,
        unreachable: !matches!(
            source,
            bollard::errors::Error::DockerResponseServerError { .. }
        ),
        detail: source.to_string(),
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The container name of a run: deterministic, so a retry finds an earlier attempt's.
pub fn container_name(workspace_id: &str, run_id: &str) -> String {
    let safe: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("tug-{workspace_id}-{safe}")
}

/// Log request options from the last timestamp seen (`since` has whole seconds).
fn log_options(follow: bool, last: &Mutex<Option<String>>) -> LogsOptions {
    let since = last
        .lock()
        .unwrap()
        .as_deref()
        .and_then(super::ts_unix_seconds)
        .unwrap_or(0);
    LogsOptions {
        follow,
        stdout: true,
        stderr: true,
        timestamps: true,
        since: since as i32,
        ..Default::default()
    }
}

/// Lines of one log request, past `last` only, advancing `last`. With `flush`, an
/// unfinished line at the end is handed out too.
fn assembled(
    raw: impl futures_util::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>>
    + Send
    + 'static,
    name: String,
    last: Arc<Mutex<Option<String>>>,
    flush: bool,
) -> LogStream {
    // One assembler per output stream.
    let pair = Arc::new(Mutex::new((
        LineAssembler::default(),
        LineAssembler::default(),
    )));
    let at_end = pair.clone();
    let lines = raw.map(move |item| {
        let item = item.map_err(engine(format!("reading the log of {name}")))?;
        let mut pair = pair.lock().unwrap();
        let lines = match item {
            bollard::container::LogOutput::StdErr { message } => pair.1.push(&message),
            other => pair.0.push(&other.into_bytes()),
        };
        Ok::<_, Error>(futures_util::stream::iter(lines.into_iter().map(Ok)))
    });
    let end = futures_util::stream::once(async move {
        let mut pair = at_end.lock().unwrap();
        let rest: Vec<_> = if flush {
            [pair.0.finish(), pair.1.finish()]
                .into_iter()
                .flatten()
                .collect()
        } else {
            vec![]
        };
        Ok(futures_util::stream::iter(rest.into_iter().map(Ok)))
    });
    lines
        .chain(end)
        .try_flatten()
        .try_filter(move |l| {
            let mut last = last.lock().unwrap();
            let keep = last.as_deref().is_none_or(|c| l.ts.as_str() > c);
            if keep {
                *last = Some(l.ts.clone());
            }
            futures_util::future::ready(keep)
        })
        .boxed()
}

/// The engine's create request for `spec`. Pure.
pub fn create_body(spec: &RunSpec) -> ContainerCreateBody {
    let labels = HashMap::from([
        (labels::WORKSPACE.to_string(), spec.workspace_id.clone()),
        (labels::RUN.to_string(), spec.run_id.clone()),
        (labels::ROLE.to_string(), "job".to_string()),
    ]);
    let binds: Vec<String> = spec
        .mounts
        .iter()
        .map(|m| format!("{}:{}:ro", m.host, m.container))
        .collect();
    let device_requests = spec.limits.gpus.map(|n| {
        vec![DeviceRequest {
            driver: Some("nvidia".into()),
            count: Some(n),
            capabilities: Some(vec![vec!["gpu".into()]]),
            ..Default::default()
        }]
    });
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(vec!["/bin/sh".into(), "-c".into(), spec.command.clone()]),
        entrypoint: Some(vec![]),
        working_dir: Some(spec.working_dir.clone()),
        user: spec.user.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        tty: Some(false),
        host_config: Some(HostConfig {
            binds: (!binds.is_empty()).then_some(binds),
            nano_cpus: spec.limits.nano_cpus,
            memory: spec.limits.memory_bytes,
            shm_size: spec.limits.shm_bytes,
            device_requests,
            // An init reaps zombies and forwards TERM to the user's process.
            init: Some(true),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl DockerTarget {
    /// Connects to the local engine (honouring `DOCKER_HOST`), negotiating the API version.
    pub async fn connect_local(workspace_id: &str) -> Result<DockerTarget, Error> {
        let docker = Docker::connect_with_defaults().map_err(engine("connecting"))?;
        let docker = docker.negotiate_version().await.map_err(engine(
            "negotiating the API version (is the Docker engine running?)",
        ))?;
        Ok(DockerTarget::new(docker, workspace_id))
    }

    pub fn new(docker: Docker, workspace_id: &str) -> DockerTarget {
        DockerTarget {
            docker,
            workspace_id: workspace_id.to_string(),
        }
    }

    /// Whether the engine can hand GPUs to containers (NVIDIA container runtime).
    pub async fn has_gpu_runtime(&self) -> Result<bool, Error> {
        let info = self
            .docker
            .info()
            .await
            .map_err(engine("reading the engine's runtimes"))?;
        Ok(info
            .runtimes
            .is_some_and(|r| r.keys().any(|k| k.contains("nvidia"))))
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The host's address on Docker's default bridge: containers on it reach the host
    /// there, while other machines have no route to it.
    pub async fn bridge_gateway(&self) -> Option<std::net::IpAddr> {
        let net = self.docker.inspect_network("bridge", None).await.ok()?;
        net.ipam?.config?.iter().find_map(gateway_of)
    }

    fn name(&self, run_id: &str) -> String {
        container_name(&self.workspace_id, run_id)
    }
}

impl ComputeTarget for DockerTarget {
    fn container_name(&self, run_id: &str) -> String {
        self.name(run_id)
    }

    async fn start(&self, spec: &RunSpec) -> Result<(), Error> {
        let name = self.name(&spec.run_id);
        if let Some(n) = spec.limits.gpus
            && !self.has_gpu_runtime().await?
        {
            return Err(Error::Unsupported(format!(
                "the instance type asks for {n} GPU(s), but this Docker engine has no `nvidia` runtime; install the NVIDIA container toolkit, or pick an instance type without `gpu:`"
            )));
        }
        let opts = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        // Create first; only a name conflict (an earlier attempt's container) needs a look.
        let mut retried = false;
        loop {
            match self
                .docker
                .create_container(Some(opts.clone()), create_body(spec))
                .await
            {
                Ok(_) => break,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409, ..
                }) if !retried => match self.state(&spec.run_id).await? {
                    ContainerState::Running | ContainerState::Exited(_) => return Ok(()),
                    ContainerState::Created | ContainerState::Missing => {
                        // An earlier attempt died between create and start: start afresh.
                        self.remove(&spec.run_id).await?;
                        retried = true;
                    }
                },
                Err(e) => return Err(engine(format!("creating container {name}"))(e)),
            }
        }
        if !spec.files.is_empty() {
            let opts = UploadToContainerOptions {
                path: "/".into(),
                ..Default::default()
            };
            let body = bollard::body_full(spec.files_tar().into());
            if let Err(e) = self
                .docker
                .upload_to_container(&name, Some(opts), body)
                .await
            {
                let _ = self.remove(&spec.run_id).await;
                return Err(engine(format!("copying the code snapshot into {name}"))(e));
            }
        }
        self.docker
            .start_container(&name, None)
            .await
            .map_err(engine(format!("starting container {name}")))
    }

    fn logs(&self, run_id: &str, cursor: Option<&str>) -> LogStream {
        let name = self.name(run_id);
        // The last timestamp handed out: the cursor first, then each line's.
        let last = Arc::new(Mutex::new(cursor.map(super::normalize_ts)));
        // Follow the log live. The engine's follow mode drops an unfinished last line
        // (Docker 20.10), so once it ends, a plain read from the last line's second
        // catches up on whatever came after it, the unfinished line included.
        let live = assembled(
            self.docker.logs(&name, Some(log_options(true, &last))),
            name.clone(),
            last.clone(),
            false,
        );
        let docker = self.docker.clone();
        let catch_up = futures_util::stream::once(async move {
            let rest = docker.logs(&name, Some(log_options(false, &last)));
            assembled(rest, name, last, true)
        })
        .flatten();
        live.chain(catch_up).boxed()
    }

    async fn wait(&self, run_id: &str) -> Result<i64, Error> {
        let name = self.name(run_id);
        let opts = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let mut s = self.docker.wait_container(&name, Some(opts));
        match s.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(engine(format!("waiting for {name}"))(e)),
            None => match self.state(run_id).await? {
                ContainerState::Exited(code) => Ok(code),
                other => Err(Error::Unsupported(format!(
                    "the engine stopped reporting on {name} while it was {other:?}"
                ))),
            },
        }
    }

    async fn state(&self, run_id: &str) -> Result<ContainerState, Error> {
        let name = self.name(run_id);
        match self.docker.inspect_container(&name, None).await {
            Ok(c) => {
                let st = c.state.unwrap_or_default();
                Ok(if st.running == Some(true) {
                    ContainerState::Running
                } else if st.status.map(|s| s.to_string()).as_deref() == Some("created") {
                    ContainerState::Created
                } else {
                    ContainerState::Exited(st.exit_code.unwrap_or(-1))
                })
            }
            Err(e) if is_not_found(&e) => Ok(ContainerState::Missing),
            Err(e) => Err(engine(format!("inspecting {name}"))(e)),
        }
    }

    async fn stop(&self, run_id: &str) -> Result<(), Error> {
        let name = self.name(run_id);
        let opts = StopContainerOptions {
            t: Some(STOP_GRACE_SECONDS),
            ..Default::default()
        };
        match self.docker.stop_container(&name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(engine(format!("stopping {name}"))(e)),
        }
    }

    async fn collect(
        &self,
        run_id: &str,
        collect: &[(String, String)],
        dest: &Path,
    ) -> Result<(), Error> {
        let name = self.name(run_id);
        let mut budget = Budget::new(CollectLimits::from_env());
        for (from, to) in collect {
            let target = dest.join(to);
            let what = to.rsplit('/').next().unwrap_or(to).to_string();
            let local = |source| Error::Collect {
                path: target.display().to_string(),
                source,
            };
            std::fs::create_dir_all(dest).map_err(local)?;
            let outcome = self
                .collect_one(&name, from, &target, dest, &mut budget, &what)
                .await;
            if let Err(e) = outcome {
                // Leave no half-copied folder: it would look complete, and on a full disk
                // the space is needed to record the failure.
                let _ = std::fs::remove_dir_all(&target);
                return Err(e);
            }
        }
        Ok(())
    }

    async fn remove(&self, run_id: &str) -> Result<(), Error> {
        let name = self.name(run_id);
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(&name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 409: removal already in progress.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(engine(format!("removing {name}"))(e)),
        }
    }

    async fn reachable(&self, within: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        loop {
            if self.docker.ping().await.is_ok() {
                return true;
            }
            if start.elapsed() >= within {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    async fn list(&self) -> Result<Vec<String>, Error> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{}={}", labels::WORKSPACE, self.workspace_id)],
            )])),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(engine("listing this workspace's containers"))?;
        Ok(list
            .into_iter()
            .filter_map(|c| c.labels?.get(labels::RUN).cloned())
            .collect())
    }
}

impl DockerTarget {
    /// Copies `from` out of container `name` into `target`, spooled to an unlinked file in
    /// `spool_dir` (never held in memory) and within `budget`; a transient engine error is
    /// retried.
    async fn collect_one(
        &self,
        name: &str,
        from: &str,
        target: &Path,
        spool_dir: &Path,
        budget: &mut Budget,
        what: &str,
    ) -> Result<(), Error> {
        let local = |source| Error::Collect {
            path: target.display().to_string(),
            source,
        };
        let spent_before = budget.bytes;
        let mut attempt = 0;
        let spool = loop {
            attempt += 1;
            budget.bytes = spent_before;
            let spool = tempfile::tempfile_in(spool_dir).map_err(local)?;
            let opts = DownloadFromContainerOptions {
                path: from.to_string(),
            };
            let mut stream = self.docker.download_from_container(name, Some(opts));
            let mut file = tokio::fs::File::from_std(spool);
            let mut failed = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(bytes) => {
                        budget.spend_bytes(bytes.len() as u64, spool_dir, what)?;
                        if let Err(e) = tokio::io::AsyncWriteExt::write_all(&mut file, &bytes).await
                        {
                            return Err(budget.io(e, target, what).into());
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => break Some(file.into_std().await),
                // The program never made this folder: nothing to collect.
                Some(e) if is_not_found(&e) => break None,
                // The engine went away (restarting): wait for it rather than give up.
                Some(e)
                    if !matches!(e, bollard::errors::Error::DockerResponseServerError { .. })
                        && attempt < 3
                        && self.reachable(super::BACK_WITHIN).await =>
                {
                    tracing::warn!(error = %e, "the engine is back; copying outputs again");
                }
                Some(e) if attempt >= 3 => {
                    return Err(engine(format!("copying {from} out of {name}"))(e));
                }
                Some(e) => {
                    tracing::warn!(error = %e, attempt, "copying outputs failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(attempt)).await;
                }
            }
        };
        let Some(spool) = spool else {
            return Ok(());
        };
        // The archive's bytes were counted; unpacking counts files (and bytes again, as
        // written, since a tar of many tiny files is mostly headers).
        budget.bytes = spent_before;
        unpack_spool(spool, target, budget, what, name).await?;
        Ok(())
    }
}

/// A bridge's gateway: as configured, else (the engine often leaves it out) the first
/// address of its IPv4 subnet, which is what Docker gives the bridge.
fn gateway_of(c: &bollard::models::IpamConfig) -> Option<std::net::IpAddr> {
    if let Some(g) = c.gateway.as_deref().and_then(|g| g.parse().ok()) {
        return Some(g);
    }
    let (net, _) = c.subnet.as_deref()?.split_once('/')?;
    let net: std::net::Ipv4Addr = net.parse().ok()?;
    Some(std::net::IpAddr::V4((u32::from(net) + 1).into()))
}

#[cfg(test)]
mod tests {

    #[test]
    fn bridge_gateway_comes_from_the_subnet_when_unset() {
        let c = |gateway: Option<&str>, subnet: Option<&str>| bollard::models::IpamConfig {
            gateway: gateway.map(str::to_string),
            subnet: subnet.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(
            gateway_of(&c(None, Some("172.17.0.0/16"))),
            Some("172.17.0.1".parse().unwrap())
        );
        assert_eq!(
            gateway_of(&c(Some("10.0.0.254"), Some("10.0.0.0/24"))),
            Some("10.0.0.254".parse().unwrap())
        );
        assert_eq!(gateway_of(&c(None, Some("fd00::/64"))), None);
    }
    use super::*;
    use crate::compute::Limits;

    fn spec() -> RunSpec {
        RunSpec {
            workspace_id: "ab12".into(),
            run_id: "run_1".into(),
            image: "tug/env:x".into(),
            command: "python train.py".into(),
            working_dir: "/tug/code".into(),
            env: [("A".to_string(), "1".to_string())].into(),
            user: Some("1000:1000".into()),
            secret_env: Default::default(),
            files: vec![],
            owner: (1000, 1000),
            dir_mode: 0o755,
            mounts: vec![crate::compute::HostMount {
                host: "/data".into(),
                container: "/tug/inputs/d".into(),
            }],
            limits: Limits {
                memory_bytes: Some(1 << 30),
                gpus: Some(1),
                ..Default::default()
            },
            collect: vec![],
        }
    }

    #[test]
    fn names_are_deterministic_and_safe() {
        assert_eq!(container_name("ab12", "run_1"), "tug-ab12-run_1");
        assert_eq!(container_name("ab12", "a b/c"), "tug-ab12-a-b-c");
    }

    #[test]
    fn create_body_carries_labels_mounts_limits_and_user() {
        let b = create_body(&spec());
        let labels = b.labels.unwrap();
        assert_eq!(labels[labels::RUN], "run_1");
        assert_eq!(labels[labels::WORKSPACE], "ab12");
        assert_eq!(b.user.as_deref(), Some("1000:1000"));
        assert_eq!(b.cmd.unwrap()[2], "python train.py");
        let hc = b.host_config.unwrap();
        assert_eq!(hc.binds.unwrap(), ["/data:/tug/inputs/d:ro"]);
        assert_eq!(hc.memory, Some(1 << 30));
        assert_eq!(hc.device_requests.unwrap()[0].count, Some(1));
        assert_eq!(b.env.unwrap(), ["A=1"]);
    }
}
