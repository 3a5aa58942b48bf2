//! A Kubernetes cluster as a compute target: the pure objects of [`objects`] applied with
//! server-side apply, followed with watches (never a polling loop), files moved through
//! exec'd `tar`. How images reach the nodes is the target's `images:` setting.

pub mod images;
pub mod objects;
mod tunnel;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures_util::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, AttachParams, DeleteParams, ListParams, LogParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::io::AsyncWriteExt;

use super::collect::{Budget, CollectLimits, unpack_spool};
use super::config::{ImageDelivery, TargetConfig, TrackingRoute};
use super::{ComputeTarget, ContainerState, Error, LogLine, LogStream, RunSpec};
use objects::{COLLECTOR, JobOptions, MAIN};

/// Server-side apply's field manager: tug owns the fields it sets.
const FIELD_MANAGER: &str = "tug";
/// How long a pod may stay unscheduled or pulling before the run fails with the reason.
const START_WITHIN: std::time::Duration = std::time::Duration::from_secs(600);

/// A cluster (one kubeconfig context and namespace) for one workspace's runs.
#[derive(Clone)]
pub struct KubeTarget {
    inner: Arc<Inner>,
}

struct Inner {
    /// The compute target's name, for messages.
    name: String,
    client: kube::Client,
    /// How images reach the nodes, the kind cluster or minikube profile, and this
    /// machine's engine to load them through.
    delivery: ImageDelivery,
    cluster: String,
    docker: Option<bollard::Docker>,
    workspace_id: String,
    opts: JobOptions,
    endpoint_service: super::config::EndpointService,
    /// Pod names by run id, once seen (a Job's pod has a generated name).
    pods: Mutex<HashMap<String, String>>,
    /// The server's MLflow tracking listener, which a pod's relay is tunnelled to.
    tracking: Option<std::net::SocketAddr>,
}

/// Maps a client error to the target-neutral one; anything but an answer from the API
/// server (a status) means it did not answer.
pub fn api(target: &str, doing: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let doing = doing.into();
    let target = format!("Kubernetes compute `{target}`");
    move |e| Error::Target {
        target,
        doing,
        unreachable: !matches!(e, kube::Error::Api(_)),
        detail: match &e {
            kube::Error::Api(s) if s.code == 403 => format!(
                "{e}\n  help: tug's identity lacks a permission; manifests/rbac.yaml lists what tug needs, verb by verb (apply it again after upgrading tug)"
            ),
            _ => e.to_string(),
        },
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The client for a compute target's kubeconfig and context.
pub async fn client(name: &str, cfg: &TargetConfig) -> Result<kube::Client, Error> {
    let config = kube_config(name, cfg).await?;
    kube::Client::try_from(config).map_err(api(name, "building its client"))
}

/// The connection settings a compute target's kubeconfig and context give.
async fn kube_config(name: &str, cfg: &TargetConfig) -> Result<kube::Config, Error> {
    let options = kube::config::KubeConfigOptions {
        context: cfg.context.clone(),
        ..Default::default()
    };
    let bad = |detail: String| Error::Target {
        target: format!("Kubernetes compute `{name}`"),
        doing: "reading its kubeconfig".into(),
        detail,
        unreachable: false,
    };
    match &cfg.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| bad(format!("{path}: {e}")))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| bad(e.to_string()))
}

/// What `tug compute show` tells of a cluster.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterInfo {
    pub reachable: bool,
    pub server_version: String,
    pub nodes: Vec<NodeInfo>,
    /// How runs' MLflow clients reach tug here: `direct` or `tunnel`.
    pub tracking: &'static str,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub ready: bool,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub gpu: Option<String>,
}

/// Asks the cluster its version and its nodes' readiness and allocatable resources.
pub async fn cluster_info(name: &str, cfg: &TargetConfig) -> Result<ClusterInfo, Error> {
    let config = kube_config(name, cfg).await?;
    let tracking = TrackingRoute::resolve(cfg.tracking, &config.cluster_url.to_string());
    let client = kube::Client::try_from(config).map_err(api(name, "building its client"))?;
    let version = client
        .apiserver_version()
        .await
        .map_err(api(name, "asking the API server's version"))?;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client);
    let list = nodes
        .list(&ListParams::default())
        .await
        .map_err(api(name, "listing nodes"))?;
    let nodes = list
        .items
        .into_iter()
        .map(|n| {
            let status = n.status.unwrap_or_default();
            let alloc = status.allocatable.unwrap_or_default();
            NodeInfo {
                name: n.metadata.name.unwrap_or_default(),
                ready: status
                    .conditions
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True"),
                cpu: alloc.get("cpu").map(|q| q.0.clone()),
                memory: alloc.get("memory").map(|q| q.0.clone()),
                gpu: alloc.get("nvidia.com/gpu").map(|q| q.0.clone()),
            }
        })
        .collect();
    Ok(ClusterInfo {
        reachable: true,
        server_version: version.git_version,
        nodes,
        tracking: tracking.as_str(),
    })
}

impl KubeTarget {
    pub async fn connect(
        name: &str,
        cfg: &TargetConfig,
        workspace_id: &str,
        docker: bollard::Docker,
        tracking: Option<std::net::SocketAddr>,
    ) -> Result<KubeTarget, Error> {
        let config = kube_config(name, cfg).await?;
        let route = TrackingRoute::resolve(cfg.tracking, &config.cluster_url.to_string());
        let client = kube::Client::try_from(config).map_err(api(name, "building its client"))?;
        let delivery = cfg.images.unwrap_or(ImageDelivery::Local);
        if delivery == ImageDelivery::Registry {
            return Err(Error::Unsupported(format!(
                "compute `{name}`: `images: registry` is not supported yet; use `local`, `kind` or `minikube`"
            )));
        }
        let cluster = match (&cfg.cluster, delivery) {
            (Some(c), _) => c.clone(),
            (None, ImageDelivery::Kind) => "kind".into(),
            (None, _) => "minikube".into(),
        };
        Ok(KubeTarget {
            inner: Arc::new(Inner {
                name: name.to_string(),
                client,
                delivery,
                cluster,
                docker: Some(docker),
                workspace_id: workspace_id.to_string(),
                opts: JobOptions {
                    namespace: cfg.namespace.clone().unwrap_or_else(|| "default".into()),
                    pull_policy: "IfNotPresent".into(),
                    image_pull_secret: cfg.image_pull_secret.clone(),
                    host_paths: delivery == ImageDelivery::Local,
                    tracking_tunnel: route == TrackingRoute::Tunnel,
                },
                endpoint_service: cfg.endpoint_service.unwrap_or_default(),
                pods: Mutex::default(),
                tracking,
            }),
        })
    }

    /// A target over an existing client (tests hand in a mock service).
    pub fn with_client(
        name: &str,
        client: kube::Client,
        workspace_id: &str,
        opts: JobOptions,
    ) -> KubeTarget {
        KubeTarget {
            inner: Arc::new(Inner {
                name: name.to_string(),
                client,
                delivery: ImageDelivery::Local,
                cluster: String::new(),
                docker: None,
                workspace_id: workspace_id.to_string(),
                opts,
                endpoint_service: Default::default(),
                pods: Mutex::default(),
                tracking: None,
            }),
        }
    }

    fn err(&self, doing: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        api(&self.inner.name, doing)
    }

    /// How endpoints' router Services are exposed.
    pub fn endpoint_service(&self) -> super::config::EndpointService {
        self.inner.endpoint_service
    }

    /// The compute target's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn client(&self) -> kube::Client {
        self.inner.client.clone()
    }

    /// Namespace, pull policy and pull secret, as the config gives them.
    pub fn options(&self) -> &JobOptions {
        &self.inner.opts
    }

    /// Loads `image` onto the nodes as the target's `images:` setting says (nothing to do
    /// for `local`: the nodes use this machine's engine).
    pub async fn deliver_image(&self, image: &str) -> Result<(), Error> {
        if let Some(docker) = &self.inner.docker {
            let done =
                images::deliver(docker, self.inner.delivery, &self.inner.cluster, image).await?;
            if !done.loaded.is_empty() {
                tracing::info!(image, nodes = ?done.loaded, "loaded the image onto the nodes");
            }
        }
        Ok(())
    }

    /// Runs `command` in a container of a pod; its stdout, or the error with its stderr.
    pub async fn exec_in(
        &self,
        pod: &str,
        container: &str,
        command: Vec<String>,
    ) -> Result<Vec<u8>, Error> {
        self.exec(pod, container, command, None).await
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.inner.client.clone(), &self.inner.opts.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.inner.client.clone(), &self.inner.opts.namespace)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.inner.client.clone(), &self.inner.opts.namespace)
    }

    fn selector(&self, run_id: &str) -> String {
        objects::run_selector(&self.inner.workspace_id, run_id)
    }

    /// The name of the run's pod: remembered from an earlier look, else looked up.
    async fn pod_name(&self, run_id: &str) -> Result<Option<String>, Error> {
        let known = self.inner.pods.lock().unwrap().get(run_id).cloned();
        match known {
            Some(name) => Ok(Some(name)),
            None => Ok(self.pod(run_id).await?.and_then(|p| p.metadata.name)),
        }
    }

    /// The run's pod, if it has one.
    async fn pod(&self, run_id: &str) -> Result<Option<Pod>, Error> {
        let known = self.inner.pods.lock().unwrap().get(run_id).cloned();
        if let Some(name) = known {
            match self.pods().get_opt(&name).await {
                Ok(Some(p)) => return Ok(Some(p)),
                Ok(None) => {}
                Err(e) => return Err(self.err(format!("reading pod {name}"))(e)),
            }
        }
        let lp = ListParams::default().labels(&self.selector(run_id));
        let list = self
            .pods()
            .list(&lp)
            .await
            .map_err(self.err("listing the run's pods"))?;
        let pod = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .max_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
        if let Some(name) = pod.as_ref().and_then(|p| p.metadata.name.clone()) {
            self.inner
                .pods
                .lock()
                .unwrap()
                .insert(run_id.to_string(), name);
        }
        Ok(pod)
    }

    /// Server-side applies `obj` as field manager `tug`, taking over conflicting fields.
    pub async fn apply<K>(&self, api: &Api<K>, name: &str, obj: &K) -> Result<K, Error>
    where
        K: kube::Resource
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .map_err(self.err(format!("applying {name}")))
    }

    /// Runs `command` in `container` of `pod`, feeding `stdin`; returns its stdout.
    /// `stdout_to`, when given, receives stdout instead (spooled, never held whole).
    async fn exec(
        &self,
        pod: &str,
        container: &str,
        command: Vec<String>,
        stdin: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.exec_into(pod, container, command, stdin, &mut out, |_| Ok(()))
            .await?;
        Ok(out)
    }

    async fn exec_into<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        pod: &str,
        container: &str,
        command: Vec<String>,
        stdin: Option<Vec<u8>>,
        sink: &mut W,
        mut on_chunk: impl FnMut(usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let what = format!("running `{}` in {pod}/{container}", command[0]);
        let ap = AttachParams::default()
            .container(container)
            .stdin(stdin.is_some())
            .stdout(true)
            .stderr(true);
        let mut proc = self
            .pods()
            .exec(pod, command.clone(), &ap)
            .await
            .map_err(self.err(what.clone()))?;
        if let (Some(data), Some(mut w)) = (stdin, proc.stdin()) {
            tokio::spawn(async move {
                let _ = w.write_all(&data).await;
                let _ = w.shutdown().await;
            });
        }
        let status = proc.take_status();
        let mut stdout = proc.stdout().expect("stdout was asked for");
        let mut stderr = proc.stderr().expect("stderr was asked for");
        let err_task = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut buf).await;
            buf
        });
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut stdout, &mut buf)
                .await
                .map_err(|e| Error::Collect {
                    path: what.clone(),
                    source: e,
                })?;
            if n == 0 {
                break;
            }
            on_chunk(n)?;
            sink.write_all(&buf[..n])
                .await
                .map_err(|e| Error::Collect {
                    path: what.clone(),
                    source: e,
                })?;
        }
        let stderr = err_task.await.unwrap_or_default();
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        // The status says how it ended; the stream's task may still be feeding stdin to a
        // process that stopped reading, so it is ended rather than waited for.
        proc.abort();
        match status {
            Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
            // The stream closed before the process said how it ended (a dropped connection,
            // or a server that closes the socket when stdin ends): unknown, never success.
            None => Err(Error::Target {
                target: format!("Kubernetes compute `{}`", self.inner.name),
                doing: what,
                detail: "the connection closed before the command's exit status arrived".into(),
                unreachable: true,
            }),
            Some(s) => Err(Error::Target {
                target: format!("Kubernetes compute `{}`", self.inner.name),
                doing: what,
                detail: format!(
                    "{}{}{}",
                    s.message.clone().unwrap_or_default(),
                    if stderr.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", String::from_utf8_lossy(&stderr).trim())
                    },
                    exit_code(&s)
                        .map(|c| format!(" [exit {c}]"))
                        .unwrap_or_default()
                ),
                unreachable: false,
            }),
        }
    }

    /// Copies the run's files into the pod: spooled by one exec, checked and unpacked by a
    /// second, again (up to three times) when the spool came out short.
    async fn deliver(&self, pod: &str, tar: Vec<u8>) -> Result<(), Error> {
        let bytes = tar.len();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .exec(
                    pod,
                    COLLECTOR,
                    objects::receive_command(),
                    Some(tar.clone()),
                )
                .await
            {
                // Older servers end the stream before the status: the size check decides.
                Ok(_) => {}
                Err(e) if e.is_unreachable() => {}
                Err(e) => return Err(e),
            }
            match self
                .exec(pod, COLLECTOR, objects::unpack_command(bytes), None)
                .await
            {
                Ok(_) => return Ok(()),
                Err(Error::Target { detail, .. })
                    if attempt < 3
                        && detail.ends_with(&format!("[exit {}]", objects::SPOOL_SHORT)) =>
                {
                    tracing::warn!(
                        pod,
                        attempt,
                        "the run's files arrived short; sending them again"
                    );
                }
                Err(e) => {
                    return Err(Error::Unsupported(format!(
                        "copying the run's files into pod {pod} failed: {e}"
                    )));
                }
            }
        }
    }

    /// Starts the run's pod through to `main` running: waits for `collector`, streams the
    /// files in through it, and waits for `main` to be running (or ended), all on one
    /// watch; fails with the reason when the pod cannot start.
    async fn start_pod(&self, spec: &RunSpec) -> Result<(), Error> {
        let cfg = watcher::Config::default().labels(&self.selector(&spec.run_id));
        // A watch that breaks is re-established (with backoff) by the watcher; the
        // deadline bounds the whole start.
        let stream = watcher(self.pods(), cfg)
            .default_backoff()
            .applied_objects();
        tokio::pin!(stream);
        let deadline = tokio::time::sleep(START_WITHIN);
        tokio::pin!(deadline);
        let mut last_reason = String::from("no pod was created for the Job");
        // The pod (by uid) the files went to: a replacement pod needs them again.
        let mut delivered: Option<String> = None;
        loop {
            let next = tokio::select! {
                n = stream.try_next() => n,
                _ = &mut deadline => {
                    return Err(Error::Unsupported(format!(
                        "the run's pod did not start within {} s: {last_reason}",
                        START_WITHIN.as_secs()
                    )));
                }
            };
            let pod = match next {
                Ok(Some(p)) => p,
                Ok(None) => {
                    return Err(Error::Target {
                        target: format!("Kubernetes compute `{}`", self.inner.name),
                        doing: "watching the run's pod".into(),
                        detail: "the watch ended".into(),
                        unreachable: true,
                    });
                }
                Err(e) => {
                    tracing::warn!(run = %spec.run_id, error = %e, "the pod watch broke; watching again");
                    last_reason = format!("the watch broke: {e}");
                    continue;
                }
            };
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            self.inner
                .pods
                .lock()
                .unwrap()
                .insert(spec.run_id.clone(), pod_name.clone());
            let status = pod.status.clone().unwrap_or_default();
            if status.phase.as_deref() == Some("Failed") || main_exit(&pod).is_some() {
                return Ok(());
            }
            let statuses = status.container_statuses.clone().unwrap_or_default();
            for c in &statuses {
                if let Some(why) = start_failure(c) {
                    return Err(Error::Unsupported(why));
                }
            }
            let running = |name: &str| {
                statuses
                    .iter()
                    .find(|c| c.name == name)
                    .and_then(|c| c.state.as_ref())
                    .is_some_and(|s| s.running.is_some())
            };
            if running(COLLECTOR) && delivered != pod.metadata.uid {
                let tar = spec.files_tar_under(crate::run::model::paths::ROOT);
                let deliver = self.deliver(&pod_name, tar);
                match tokio::time::timeout(START_WITHIN, deliver).await {
                    Ok(result) => result?,
                    Err(_) => {
                        return Err(Error::Unsupported(format!(
                            "copying the run's files into pod {pod_name} did not finish within {} s",
                            START_WITHIN.as_secs()
                        )));
                    }
                }
                delivered = pod.metadata.uid.clone();
            }
            if delivered.is_some() && delivered == pod.metadata.uid && running(MAIN) {
                return Ok(());
            }
            if let Some(cond) = status
                .conditions
                .as_deref()
                .unwrap_or_default()
                .iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            {
                last_reason = format!(
                    "not scheduled: {}",
                    cond.message.clone().unwrap_or_default()
                );
            } else if let Some(c) = statuses.iter().find(|c| c.name == MAIN) {
                last_reason = waiting_reason(c);
            }
        }
    }
}

/// The exit code an exec's failure status reports.
fn exit_code(s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> Option<i32> {
    s.details
        .as_ref()?
        .causes
        .as_ref()?
        .iter()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))?
        .message
        .as_ref()?
        .parse()
        .ok()
}

/// Why a container cannot start, for the errors that never fix themselves.
fn start_failure(c: &ContainerStatus) -> Option<String> {
    let w = c.state.as_ref()?.waiting.as_ref()?;
    let reason = w.reason.as_deref()?;
    let fatal = [
        "ErrImageNeverPull",
        "InvalidImageName",
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
        "CreateContainerError",
    ];
    fatal.contains(&reason).then(|| {
        let hint = match reason {
            "ErrImageNeverPull" | "ImagePullBackOff" | "ErrImagePull" => {
                "\n  help: the image is not on the node; check the compute's `images:` setting (local, kind, minikube, registry)"
            }
            _ => "",
        };
        format!(
            "the run's pod cannot start: {reason}: {}{hint}",
            w.message.clone().unwrap_or_default()
        )
    })
}

fn waiting_reason(c: &ContainerStatus) -> String {
    c.state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .map(|w| {
            format!(
                "{} {}",
                w.reason.clone().unwrap_or_default(),
                w.message.clone().unwrap_or_default()
            )
        })
        .unwrap_or_else(|| "waiting".into())
}

fn main_status(pod: &Pod) -> Option<ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == MAIN)
        .cloned()
}

/// `main`'s exit code once it has ended (or the pod failed without running it).
fn main_exit(pod: &Pod) -> Option<i64> {
    if let Some(t) = main_status(pod)
        .and_then(|c| c.state)
        .and_then(|s| s.terminated)
    {
        return Some(i64::from(t.exit_code));
    }
    (pod.status.as_ref()?.phase.as_deref() == Some("Failed")).then_some(-1)
}

fn collector_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == COLLECTOR))
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

/// One `<RFC 3339> <text>` line of a `timestamps=true` log.
fn log_line(line: &str) -> LogLine {
    match line.split_once(' ') {
        Some((ts, text)) if ts.ends_with('Z') => LogLine {
            ts: super::normalize_ts(ts),
            text: text.to_string(),
        },
        _ => LogLine {
            ts: String::new(),
            text: line.to_string(),
        },
    }
}

impl ComputeTarget for KubeTarget {
    fn container_name(&self, run_id: &str) -> String {
        format!(
            "{}/{}",
            self.inner.opts.namespace,
            objects::job_name(&self.inner.workspace_id, run_id)
        )
    }

    async fn start(&self, spec: &RunSpec) -> Result<(), Error> {
        objects::check(spec, &self.inner.opts).map_err(Error::Unsupported)?;
        self.deliver_image(&spec.image).await?;
        let name = objects::job_name(&spec.workspace_id, &spec.run_id);
        let secret = objects::run_secret(spec, &self.inner.opts);
        if let Some(secret) = &secret {
            self.apply(&self.secrets(), &name, secret).await?;
        }
        let job = self
            .apply(
                &self.jobs(),
                &name,
                &objects::run_job(spec, &self.inner.opts),
            )
            .await?;
        if secret.is_some() {
            // Owned by the Job, so deleting the Job deletes the values too. A merge patch:
            // applying the Secret again without its data would drop the data.
            let owner = serde_json::json!({"metadata": {"ownerReferences": [OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: name.clone(),
                uid: job.metadata.uid.clone().unwrap_or_default(),
                ..Default::default()
            }]}});
            self.secrets()
                .patch(&name, &PatchParams::default(), &Patch::Merge(&owner))
                .await
                .map_err(self.err(format!("making job {name} own its secret")))?;
        }
        self.start_pod(spec).await?;
        Ok(())
    }

    fn logs(&self, run_id: &str, cursor: Option<&str>) -> LogStream {
        let me = self.clone();
        let run_id = run_id.to_string();
        let cursor = cursor.map(super::normalize_ts);
        let since = cursor.as_deref().and_then(super::ts_unix_seconds);
        futures_util::stream::once(async move {
            let name = me.pod_name(&run_id).await?.ok_or_else(|| {
                Error::Unsupported(format!("run {run_id} has no pod to read logs from"))
            })?;
            let lp = LogParams {
                container: Some(MAIN.into()),
                follow: true,
                timestamps: true,
                since_seconds: since.map(|s| {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(s);
                    (now - s + 1).max(1)
                }),
                ..Default::default()
            };
            let reader = me
                .pods()
                .log_stream(&name, &lp)
                .await
                .map_err(me.err(format!("reading the log of {name}")))?;
            let target = me.inner.name.clone();
            let doing = format!("reading the log of {name}");
            let last = Arc::new(Mutex::new(cursor));
            // Split on newlines and decode lossily: one invalid UTF-8 byte must not end the
            // log (a `lines()` reader fails on it).
            let lines = futures_util::stream::unfold(reader, |mut r| async move {
                let mut buf = Vec::new();
                match r.read_until(b'\n', &mut buf).await {
                    Ok(0) => None,
                    Ok(_) => {
                        if buf.last() == Some(&b'\n') {
                            buf.pop();
                        }
                        Some((Ok(String::from_utf8_lossy(&buf).into_owned()), r))
                    }
                    Err(e) => Some((Err(e), r)),
                }
            })
            .map_err(move |e| api(&target, doing.clone())(kube::Error::ReadEvents(e)))
            .map_ok(|l: String| log_line(&l))
            .try_filter(move |l| {
                let mut last = last.lock().unwrap();
                let keep = l.ts.is_empty() || last.as_deref().is_none_or(|c| l.ts.as_str() > c);
                if keep && !l.ts.is_empty() {
                    *last = Some(l.ts.clone());
                }
                futures_util::future::ready(keep)
            });
            Ok::<_, Error>(lines)
        })
        .try_flatten()
        .boxed()
    }

    async fn wait(&self, run_id: &str) -> Result<i64, Error> {
        // The watch's first answer is the pod as it is now: no separate read first.
        let Some(name) = self.pod_name(run_id).await? else {
            return Err(Error::Unsupported(format!("run {run_id} has no pod")));
        };
        // A pod with the tracking relay gets its tunnel for as long as `main` runs (the
        // pod says so itself: the config may have changed since the run started).
        // A failed read means no tunnel this time, never a failed run: `wait` is called
        // again when the target comes back.
        let _tunnel = match (self.inner.tracking, self.pod(run_id).await.ok().flatten()) {
            (Some(local), Some(pod)) if objects::has_relay(&pod) && main_exit(&pod).is_none() => {
                Some(tunnel::open(self.pods(), name.clone(), local))
            }
            _ => None,
        };
        let cond = |p: Option<&Pod>| p.is_none_or(|p| main_exit(p).is_some());
        let seen = kube::runtime::wait::await_condition(self.pods(), &name, cond)
            .await
            .map_err(|e| Error::Target {
                target: format!("Kubernetes compute `{}`", self.inner.name),
                doing: format!("watching pod {name}"),
                detail: e.to_string(),
                unreachable: true,
            })?;
        match seen.as_ref().and_then(main_exit) {
            Some(code) => Ok(code),
            None => Err(Error::Unsupported(format!(
                "pod {name} was deleted before the run ended"
            ))),
        }
    }

    async fn state(&self, run_id: &str) -> Result<ContainerState, Error> {
        match self.pod(run_id).await? {
            Some(pod) => Ok(match main_exit(&pod) {
                Some(code) => ContainerState::Exited(code),
                None if main_status(&pod)
                    .and_then(|c| c.state)
                    .is_some_and(|s| s.running.is_some()) =>
                {
                    ContainerState::Running
                }
                None => ContainerState::Created,
            }),
            None => {
                let name = objects::job_name(&self.inner.workspace_id, run_id);
                match self.jobs().get_opt(&name).await {
                    Ok(Some(_)) => Ok(ContainerState::Created),
                    Ok(None) => Ok(ContainerState::Missing),
                    Err(e) => Err(self.err(format!("reading job {name}"))(e)),
                }
            }
        }
    }

    async fn stop(&self, run_id: &str) -> Result<(), Error> {
        let Some(pod) = self.pod(run_id).await? else {
            return Ok(());
        };
        if main_exit(&pod).is_some() {
            return Ok(());
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        if collector_running(&pod) {
            self.exec(&name, COLLECTOR, objects::stop_command(), None)
                .await?;
            return Ok(());
        }
        // Not started yet (still delivering or pulling): nothing to keep, delete the pod.
        match self
            .pods()
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.err(format!("deleting pod {name}"))(e)),
        }
    }

    async fn collect(
        &self,
        run_id: &str,
        collect: &[(String, String)],
        dest: &Path,
    ) -> Result<(), Error> {
        let Some(pod) = self.pod(run_id).await? else {
            let job = objects::job_name(&self.inner.workspace_id, run_id);
            return match self.jobs().get_opt(&job).await {
                // Collected and removed by an earlier attempt that died before recording it.
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err(Error::Unsupported(format!(
                    "run {run_id}'s pod is gone (evicted or deleted); its outputs could not be copied"
                ))),
                Err(e) => Err(self.err(format!("reading job {job}"))(e)),
            };
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        if !collector_running(&pod) {
            return Err(Error::Unsupported(format!(
                "the collector of pod {name} is not running (the pod was evicted or failed); its outputs could not be copied"
            )));
        }
        let mut budget = Budget::new(CollectLimits::from_env());
        for (from, to) in collect {
            let target = dest.join(to);
            let what = to.rsplit('/').next().unwrap_or(to).to_string();
            let local = |source| Error::Collect {
                path: target.display().to_string(),
                source,
            };
            std::fs::create_dir_all(dest).map_err(local)?;
            let spool = tempfile::tempfile_in(dest).map_err(local)?;
            let mut file = tokio::fs::File::from_std(spool);
            let spent_before = budget.bytes;
            let mut spent = 0u64;
            let outcome = self
                .exec_into(
                    &name,
                    COLLECTOR,
                    objects::collect_command(from),
                    None,
                    &mut file,
                    |n| {
                        spent += n as u64;
                        budget
                            .spend_bytes(n as u64, dest, &what)
                            .map_err(Error::from)
                    },
                )
                .await;
            // The archive's bytes were counted; unpacking counts them again as written.
            budget.bytes = spent_before;
            let outcome = match outcome {
                Ok(()) if spent == 0 => Ok(()),
                Ok(()) => match file.flush().await {
                    Ok(()) => {
                        let spool = file.into_std().await;
                        unpack_spool(spool, &target, &mut budget, &what, &name).await
                    }
                    Err(e) => Err(local(e)),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                let _ = std::fs::remove_dir_all(&target);
                return Err(e);
            }
        }
        Ok(())
    }

    async fn remove(&self, run_id: &str) -> Result<(), Error> {
        let name = objects::job_name(&self.inner.workspace_id, run_id);
        self.inner.pods.lock().unwrap().remove(run_id);
        // Background propagation: the pod and the run's Secret (owned by the Job) go too.
        match self.jobs().delete(&name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            // No Job: a refused apply or a crash before it may have left the Secret alone.
            Err(e) if is_not_found(&e) => {
                match self.secrets().delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_not_found(&e) => Ok(()),
                    Err(e) => Err(self.err(format!("deleting secret {name}"))(e)),
                }
            }
            Err(e) => Err(self.err(format!("deleting job {name}"))(e)),
        }
    }

    async fn list(&self) -> Result<Vec<String>, Error> {
        let lp =
            ListParams::default().labels(&objects::workspace_selector(&self.inner.workspace_id));
        let jobs = self
            .jobs()
            .list_metadata(&lp)
            .await
            .map_err(self.err("listing this workspace's jobs"))?;
        Ok(jobs
            .items
            .into_iter()
            .filter_map(|j| {
                j.metadata
                    .annotations?
                    .get(objects::RUN_ANNOTATION)
                    .cloned()
            })
            .collect())
    }

    async fn reachable(&self, within: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        loop {
            if self.inner.client.apiserver_version().await.is_ok() {
                return true;
            }
            if start.elapsed() >= within {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::Limits;

    fn spec() -> RunSpec {
        RunSpec {
            workspace_id: "ab12".into(),
            run_id: "r1".into(),
            image: "tug/env:1".into(),
            command: "true".into(),
            working_dir: "/tug/code".into(),
            env: Default::default(),
            secret_env: Default::default(),
            user: Some("1000:1000".into()),
            files: vec![],
            owner: (1000, 1000),
            dir_mode: 0o755,
            mounts: vec![],
            limits: Limits::default(),
            collect: vec![],
        }
    }

    type Handle = tower_test::mock::Handle<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >;

    fn mocked() -> (KubeTarget, Handle) {
        let (service, handle) = tower_test::mock::pair();
        let client = kube::Client::new(service, "default");
        let opts = JobOptions {
            namespace: "default".into(),
            pull_policy: "IfNotPresent".into(),
            ..Default::default()
        };
        (KubeTarget::with_client("k8s", client, "ab12", opts), handle)
    }

    // What a real cluster cannot be made to do on demand: refuse the apply with a status,
    // or drop the connection. The first must fail the run with the API's message; the
    // second must count as "did not answer", so the run waits for the cluster to come back.
    #[tokio::test]
    async fn an_api_refusal_is_an_answer_and_a_dropped_connection_is_not() {
        let (target, mut handle) = mocked();
        let server = tokio::spawn(async move {
            let (req, send) = handle.next_request().await.expect("the apply");
            assert_eq!(req.method(), http::Method::PATCH);
            assert!(
                req.uri()
                    .path()
                    .starts_with("/apis/batch/v1/namespaces/default/jobs/tug-r1-")
            );
            assert!(
                req.uri()
                    .query()
                    .unwrap_or_default()
                    .contains("fieldManager=tug")
            );
            let status = serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
                "reason": "Forbidden",
                "message": "jobs.batch is forbidden: User \"tug\" cannot patch resource \"jobs\""
            });
            send.send_response(
                http::Response::builder()
                    .status(403)
                    .body(kube::client::Body::from(
                        serde_json::to_vec(&status).unwrap(),
                    ))
                    .unwrap(),
            );
            let (_, send) = handle.next_request().await.expect("the second apply");
            send.send_error(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ));
        });
        let refused = target.start(&spec()).await.unwrap_err();
        assert!(!refused.is_unreachable(), "{refused}");
        assert!(
            refused.to_string().contains("cannot patch resource"),
            "{refused}"
        );
        let dropped = target.start(&spec()).await.unwrap_err();
        assert!(dropped.is_unreachable(), "{dropped}");
        server.await.unwrap();
    }

    #[test]
    fn log_lines_split_timestamp_and_text() {
        let l = log_line("2026-12-06T21:30:44.5Z epoch 1 accuracy 0.9");
        assert_eq!(l.ts, "2026-12-06T21:30:44.500000000Z");
        assert_eq!(l.text, "epoch 1 accuracy 0.9");
        let raw = log_line("no timestamp here");
        assert_eq!(
            (raw.ts.as_str(), raw.text.as_str()),
            ("", "no timestamp here")
        );
    }
}
