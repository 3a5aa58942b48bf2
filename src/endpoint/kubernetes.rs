//! The endpoint operations of [`super::backend::Backend`] on a cluster: the objects of
//! [`super::kube_objects`] applied with server-side apply, readiness followed with watches,
//! the router reconfigured by exec.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};

use super::backend::{GenerationRequest, NotReady, StartError};
use super::controller::log_tail;
use super::kube_objects as obj;
use super::plan::CONTAINER_PORT;
use super::{Credentials, EndpointRecord, Error, Instance, Result};
use crate::compute::kubernetes::{KubeTarget, api};
use crate::serving::router::RouterConfig;

const FIELD_MANAGER: &str = "tug";
/// How long a router may take to become ready (its image is tiny and probed every 2 s).
const ROUTER_WITHIN: Duration = Duration::from_secs(120);
/// How long removing an endpoint waits for its pods to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(90);

/// One endpoint-capable cluster target.
#[derive(Clone)]
pub struct KubeEndpoints {
    target: KubeTarget,
    ws: String,
    /// How to start `tug-infsrv` in the router image (for `apply-config`).
    router_exec: Vec<String>,
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl KubeEndpoints {
    /// No request is made: the loopback listener must come up even while the cluster is
    /// unreachable (it answers once the cluster does).
    pub fn new(target: KubeTarget, ws: &str, router_exec: Vec<String>) -> KubeEndpoints {
        KubeEndpoints {
            target,
            ws: ws.to_string(),
            router_exec,
        }
    }

    /// The autoscaling API to apply with (`v2`, else `v2beta2`), as the server's
    /// discovery says; `None` when it serves neither.
    async fn autoscaling(&self) -> Result<Option<&'static str>> {
        let groups = self
            .target
            .client()
            .list_api_groups()
            .await
            .map_err(self.err("asking which APIs the server serves"))?;
        let served: Vec<String> = groups
            .groups
            .iter()
            .filter(|g| g.name == "autoscaling")
            .flat_map(|g| g.versions.iter().map(|v| v.version.clone()))
            .collect();
        Ok(obj::autoscaling_api(&served))
    }

    fn err(&self, doing: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let f = api(self.target.name(), doing);
        move |e| Error::Compute(f(e))
    }

    fn ns(&self) -> &str {
        &self.target.options().namespace
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.target.client(), self.ns())
    }

    /// Autoscalers at `api_version`; `autoscaling/v1` lists and deletes them all,
    /// whatever version created them, on every server.
    fn autoscalers(&self, api_version: &str) -> Api<DynamicObject> {
        let (group, version) = api_version.split_once('/').expect("group/version");
        let res = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: "HorizontalPodAutoscaler".into(),
            plural: "horizontalpodautoscalers".into(),
        };
        Api::namespaced_with(self.target.client(), self.ns(), &res)
    }

    /// The Api of router pods and their selector, for the port-forward listener.
    pub fn router_pods(&self, ep: &str) -> (Api<Pod>, String) {
        let mut labels = obj::endpoint_labels(&self.ws, ep);
        labels.insert(
            crate::compute::labels::ROLE.into(),
            super::plan::ROLE_ROUTER.into(),
        );
        (self.api(), obj::selector(&labels))
    }

    async fn apply<K>(&self, api: &Api<K>, name: &str, object: &K) -> Result<K>
    where
        K: kube::Resource
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Ok(self.target.apply(api, name, object).await?)
    }

    async fn delete<K>(&self, api: &Api<K>, name: &str) -> Result<()>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.err(format!("deleting {name}"))(e)),
        }
    }

    /// Deletes every object of kind `K` matching `selector` (listed, then deleted one by
    /// one: 1.20 has no deletecollection for Services).
    async fn delete_matching<K>(&self, api: &Api<K>, selector: &str, what: &str) -> Result<()>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let list = match api.list(&ListParams::default().labels(selector)).await {
            Ok(l) => l,
            // The autoscaling API a cluster does not serve has nothing to delete.
            Err(e) if status_code(&e) == Some(404) => return Ok(()),
            Err(e) => return Err(self.err(format!("listing {what}"))(e)),
        };
        for item in list.items {
            if let Some(name) = item.meta().name.clone() {
                self.delete(api, &name).await?;
            }
        }
        Ok(())
    }

    /// The address a NodePort or LoadBalancer router Service gives (waiting up to 60 s
    /// for a load balancer); `None` for ClusterIP.
    pub async fn external_base(&self, ep: &str) -> Result<Option<String>> {
        use crate::compute::config::EndpointService;
        let kind = self.target.endpoint_service();
        if kind == EndpointService::ClusterIP {
            return Ok(None);
        }
        let name = obj::endpoint_name(&self.ws, ep);
        let nodes: Vec<(String, String)> = if kind == EndpointService::NodePort {
            let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.target.client());
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(self.err("listing nodes for the NodePort's address (manifests/rbac.yaml's tug-node-reader allows it)"))?;
            list.items
                .iter()
                .filter_map(|n| n.status.as_ref()?.addresses.clone())
                .flatten()
                .map(|a| (a.type_, a.address))
                .collect()
        } else {
            vec![]
        };
        let start = std::time::Instant::now();
        loop {
            let svc = self
                .api::<Service>()
                .get(&name)
                .await
                .map_err(self.err(format!("reading Service {name}")))?;
            if let Some(base) = obj::external_base(&svc, &nodes) {
                return Ok(Some(base));
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(Error::Failed(format!(
                    "Service {}/{name} got no {} address within 60 s (does the cluster provide load balancers?); `kubectl -n {} describe service {name}` says why\n  help: use `endpoint_service: NodePort` or leave it out (ClusterIP, through tug's port-forward)",
                    self.ns(),
                    kind.as_str(),
                    self.ns()
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Whether the cluster serves the resource metrics an autoscaler reads.
    pub async fn serves_metrics(&self) -> bool {
        self.target
            .client()
            .list_api_groups()
            .await
            .is_ok_and(|g| g.groups.iter().any(|g| g.name == "metrics.k8s.io"))
    }

    pub async fn deliver(&self, image: &str) -> Result<()> {
        Ok(self.target.deliver_image(image).await?)
    }

    pub(super) async fn start_router(
        &self,
        ep: &EndpointRecord,
        image: &str,
        config: &RouterConfig,
        creds: &Credentials,
    ) -> Result<(), StartError> {
        let opts = self.target.options();
        let name = obj::router_name(&self.ws, &ep.name);
        self.deliver(image).await?;
        let applied = async {
            self.store_keys(&ep.name, creds).await?;
            self.apply(
                &self.api::<ConfigMap>(),
                &name,
                &obj::router_config_map(&self.ws, &ep.name, config, opts),
            )
            .await?;
            self.apply(
                &self.api::<Deployment>(),
                &name,
                &obj::router_deployment(&self.ws, &ep.name, image, opts),
            )
            .await?;
            self.apply(
                &self.api::<Service>(),
                &obj::endpoint_name(&self.ws, &ep.name),
                &obj::router_service(&self.ws, &ep.name, self.target.endpoint_service(), opts),
            )
            .await
            .map(drop)
        }
        .await;
        if let Err(e) = applied {
            // Nothing half-made stays behind.
            let _ = self.remove_endpoint(&ep.name).await;
            return Err(e.into());
        }
        let (_, selector) = self.router_pods(&ep.name);
        if let Err((why, failing)) = self
            .wait_available(&name, &selector, 1, ROUTER_WITHIN)
            .await
        {
            let log = self.first_log(&selector, failing.as_deref()).await;
            let _ = self.remove_endpoint(&ep.name).await;
            return Err(StartError::NotReady(NotReady {
                instance: name,
                why,
                log,
            }));
        }
        Ok(())
    }

    /// Waits until Deployment `name` has `want` available pods of its current template;
    /// fails early when one of its pods cannot start or keeps crashing.
    async fn wait_available(
        &self,
        name: &str,
        pod_selector: &str,
        want: u32,
        within: Duration,
    ) -> std::result::Result<(), (String, Option<String>)> {
        let want = want as i32;
        let ready = kube::runtime::wait::await_condition(
            self.api::<Deployment>(),
            name,
            move |d: Option<&Deployment>| {
                d.is_some_and(|d| {
                    let s = d.status.clone().unwrap_or_default();
                    s.observed_generation >= d.metadata.generation
                        && s.updated_replicas.unwrap_or(0) >= want
                        && s.available_replicas.unwrap_or(0) >= want
                })
            },
        );
        let pods = watcher(
            self.api::<Pod>(),
            watcher::Config::default().labels(pod_selector),
        )
        .default_backoff()
        .applied_objects();
        let fatal = async {
            let mut pods = std::pin::pin!(pods);
            while let Some(item) = pods.next().await {
                if let Ok(pod) = item
                    && let Some(why) = pod_failure(&pod)
                {
                    return (why, pod.metadata.name.clone());
                }
            }
            std::future::pending().await
        };
        tokio::select! {
            r = tokio::time::timeout(within, ready) => match r {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err((format!("watching {name}: {e}"), None)),
                Err(_) => Err((
                    format!(
                        "not ready after {} s: {}",
                        within.as_secs(),
                        self.pods_summary(pod_selector).await
                    ),
                    None,
                )),
            },
            why = fatal => Err(why),
        }
    }

    /// Each pod's phase and why it is not ready, for a timeout message.
    async fn pods_summary(&self, selector: &str) -> String {
        let Ok(list) = self
            .api::<Pod>()
            .list(&ListParams::default().labels(selector))
            .await
        else {
            return "its pods could not be listed".into();
        };
        if list.items.is_empty() {
            return "no pod was created (see `kubectl get events`)".into();
        }
        list.items
            .iter()
            .map(|p| {
                let st = p.status.clone().unwrap_or_default();
                let why = st
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| c.status != "True")
                    .filter_map(|c| c.message.or(c.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                format!(
                    "pod {} is {}{}",
                    p.metadata.name.clone().unwrap_or_default(),
                    st.phase.unwrap_or_default(),
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({why})")
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The log of pod `name` when given, else of the first pod matching `selector`; of its
    /// previous run when it restarted (that run's end is the crash).
    async fn first_log(&self, selector: &str, name: Option<&str>) -> String {
        let pods = self.api::<Pod>();
        let Ok(list) = pods.list(&ListParams::default().labels(selector)).await else {
            return String::new();
        };
        let Some(pod) = list
            .items
            .iter()
            .find(|p| name.is_none_or(|n| p.metadata.name.as_deref() == Some(n)))
        else {
            return String::new();
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let restarted = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.restart_count > 0));
        let lp = |previous| LogParams {
            tail_lines: Some(200),
            previous,
            ..Default::default()
        };
        if restarted && let Ok(previous) = pods.logs(&name, &lp(true)).await {
            return previous;
        }
        pods.logs(&name, &lp(false)).await.unwrap_or_default()
    }

    pub async fn store_keys(&self, ep: &str, creds: &Credentials) -> Result<()> {
        self.apply(
            &self.api::<Secret>(),
            &obj::keys_name(&self.ws, ep),
            &obj::keys_secret(&self.ws, ep, creds, self.target.options()),
        )
        .await
        .map(drop)
    }

    pub async fn router_problem(&self, ep: &str) -> Result<Option<String>> {
        let name = obj::router_name(&self.ws, ep);
        let dep = self
            .api::<Deployment>()
            .get_opt(&name)
            .await
            .map_err(self.err(format!("reading {name}")))?;
        let Some(dep) = dep else {
            return Ok(Some(format!(
                "its Deployment {}/{name} does not exist",
                self.ns()
            )));
        };
        let available = dep.status.and_then(|s| s.available_replicas).unwrap_or(0);
        if available > 0 {
            return Ok(None);
        }
        let (_, selector) = self.router_pods(ep);
        Ok(Some(format!(
            "no router pod is ready: {}; its log ends with:\n    {}",
            self.pods_summary(&selector).await,
            log_tail(&self.first_log(&selector, None).await, 25)
        )))
    }

    pub async fn router_log(&self, ep: &str) -> String {
        let (_, selector) = self.router_pods(ep);
        self.first_log(&selector, None).await
    }

    pub async fn push_config(&self, ep: &str, config: &RouterConfig) -> Result<()> {
        let name = obj::router_name(&self.ws, ep);
        // The seed first: a router pod that starts from now on reads this config.
        self.apply(
            &self.api::<ConfigMap>(),
            &name,
            &obj::router_config_map(&self.ws, ep, config, self.target.options()),
        )
        .await?;
        let (pods, selector) = self.router_pods(ep);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(self.err("listing the router's pods"))?;
        let running: Vec<String> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if running.is_empty() {
            return Err(Error::Failed(format!(
                "endpoint `{ep}` has no running router pod to reconfigure ({}); the config is saved in ConfigMap {}/{name} and a starting router reads it",
                self.pods_summary(&selector).await,
                self.ns()
            )));
        }
        let command = obj::apply_config_command(&self.router_exec, config);
        for pod in running {
            self.target
                .exec_in(&pod, obj::ROUTER_CONTAINER, command.clone())
                .await?;
        }
        Ok(())
    }

    pub(super) async fn start_generation(
        &self,
        req: &GenerationRequest<'_>,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Vec<Instance>, StartError> {
        let (ep, dep) = (req.ep.name.as_str(), req.dep.name.as_str());
        let name = obj::generation_name(&self.ws, ep, dep, req.generation);
        let selector = obj::selector(&obj::generation_labels(&self.ws, ep, dep, req.generation));
        let objects = self.plan_generation(req).await?;
        if req.dep.spec.autoscale.is_some()
            && !objects
                .iter()
                .any(|o| o["kind"] == "HorizontalPodAutoscaler")
        {
            return Err(Error::Invalid(format!(
                "`scale_settings: target_utilization` needs the autoscaling/v2 (or v2beta2) API, which compute `{}` does not serve\n  help: use `scale_settings: {{type: default}}` and `instance_count`",
                self.target.name()
            ))
            .into());
        }
        progress("loading the scoring image onto the cluster");
        self.deliver(req.image).await?;
        let applied = async {
            for object in &objects {
                let kind = object["kind"].as_str().unwrap_or_default().to_string();
                let patch = Patch::Apply(object);
                let params = PatchParams::apply(FIELD_MANAGER).force();
                let result = match kind.as_str() {
                    "Secret" => self
                        .api::<Secret>()
                        .patch(&name, &params, &patch)
                        .await
                        .map(drop),
                    "Deployment" => self
                        .api::<Deployment>()
                        .patch(&name, &params, &patch)
                        .await
                        .map(drop),
                    _ => self
                        .autoscalers(object["apiVersion"].as_str().unwrap_or_default())
                        .patch(&name, &params, &patch)
                        .await
                        .map(drop),
                };
                result.map_err(self.err(format!("applying {kind} {name}")))?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = applied {
            let _ = self
                .remove_generation(ep, dep, req.generation, &[], false)
                .await;
            return Err(e.into());
        }
        let want = match &req.dep.spec.autoscale {
            Some(a) => a.min_instances,
            None => req.dep.spec.instance_count,
        };
        progress(&format!(
            "waiting for {want} pod(s) of {}/{name} to be ready",
            self.ns()
        ));
        let deadline = req.dep.spec.readiness_probe.deadline();
        if let Err((why, failing)) = self.wait_available(&name, &selector, want, deadline).await {
            let log = self.first_log(&selector, failing.as_deref()).await;
            let _ = self
                .remove_generation(ep, dep, req.generation, &[], false)
                .await;
            return Err(StartError::NotReady(NotReady {
                instance: name,
                why,
                log,
            }));
        }
        match self.instances(ep, dep, req.generation).await {
            Ok(i) => Ok(i),
            Err(e) => {
                let _ = self
                    .remove_generation(ep, dep, req.generation, &[], false)
                    .await;
                Err(e.into())
            }
        }
    }

    /// The objects [`Self::start_generation`] applies, as JSON (apiVersion and kind set):
    /// the Secret, the Deployment, the autoscaler, in the order they are applied (a pod
    /// never waits for its Secret; the autoscaler finds its target).
    pub(super) async fn plan_generation(
        &self,
        req: &GenerationRequest<'_>,
    ) -> Result<Vec<serde_json::Value>> {
        let opts = self.target.options();
        let spec = obj::GenerationSpec {
            ws: &self.ws,
            deployment: req.dep,
            key_sha256: &req.ep.key_sha256,
            generation: req.generation,
            image: req.image,
            user: req.user.clone(),
            limits: req.limits,
            secret_env: req.secret_env.clone(),
        };
        let mut out = Vec::new();
        if let Some(secret) = obj::generation_secret(&spec, opts) {
            out.push(serde_json::to_value(secret).expect("serializes"));
        }
        out.push(
            serde_json::to_value(obj::generation_deployment(&spec, opts)).expect("serializes"),
        );
        if let Some(a) = &req.dep.spec.autoscale
            && let Some(api) = self.autoscaling().await?
        {
            out.push(obj::generation_autoscaler(&spec, a, api, opts));
        }
        Ok(out)
    }

    /// The ready pods of a generation, as the router addresses them.
    pub async fn instances(&self, ep: &str, dep: &str, generation: u32) -> Result<Vec<Instance>> {
        let selector = obj::selector(&obj::generation_labels(&self.ws, ep, dep, generation));
        let list = self
            .api::<Pod>()
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(self.err("listing the deployment's pods"))?;
        let mut out: Vec<Instance> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
            .filter_map(|p| {
                let ip = p.status.as_ref()?.pod_ip.clone()?;
                Some(Instance {
                    container: p.metadata.name.clone()?,
                    address: format!("{ip}:{CONTAINER_PORT}"),
                    host_port: 0,
                })
            })
            .collect();
        out.sort_by(|a, b| a.container.cmp(&b.container));
        Ok(out)
    }

    pub async fn remove_generation(
        &self,
        ep: &str,
        dep: &str,
        generation: u32,
        _instances: &[Instance],
        _drain: bool,
    ) -> Result<()> {
        // Deleting the Deployment sends its pods SIGTERM; they drain for their grace
        // period (the router no longer sends them requests).
        let name = obj::generation_name(&self.ws, ep, dep, generation);
        self.delete(&self.api::<Deployment>(), &name).await?;
        self.delete(&self.api::<Secret>(), &name).await?;
        match self
            .autoscalers("autoscaling/v1")
            .delete(&name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.err(format!("deleting the autoscaler {name}"))(e)),
        }
    }

    pub async fn remove_deployment(&self, ep: &str, dep: &str) -> Result<()> {
        let sel = obj::selector(&obj::deployment_labels(&self.ws, ep, dep));
        self.delete_matching(&self.api::<Deployment>(), &sel, "deployments")
            .await?;
        self.delete_matching(&self.api::<Secret>(), &sel, "secrets")
            .await?;
        self.delete_matching(&self.autoscalers("autoscaling/v1"), &sel, "autoscalers")
            .await
    }

    pub async fn remove_endpoint(&self, ep: &str) -> Result<()> {
        let sel = obj::selector(&obj::endpoint_labels(&self.ws, ep));
        self.delete_matching(&self.api::<Deployment>(), &sel, "deployments")
            .await?;
        self.delete_matching(&self.api::<Service>(), &sel, "services")
            .await?;
        self.delete_matching(&self.api::<ConfigMap>(), &sel, "config maps")
            .await?;
        self.delete_matching(&self.api::<Secret>(), &sel, "secrets")
            .await?;
        self.delete_matching(&self.autoscalers("autoscaling/v1"), &sel, "autoscalers")
            .await?;
        // Done when the pods are gone too (they drain first): nothing is left behind.
        let pods = self.api::<Pod>();
        let start = std::time::Instant::now();
        loop {
            let left = pods
                .list(&ListParams::default().labels(&sel))
                .await
                .map_err(self.err("listing the endpoint's pods"))?
                .items
                .len();
            if left == 0 {
                return Ok(());
            }
            if start.elapsed() > GONE_WITHIN {
                return Err(Error::Failed(format!(
                    "{left} pod(s) of endpoint `{ep}` were still terminating after {} s; `kubectl -n {} get pods -l {sel}` shows them",
                    GONE_WITHIN.as_secs(),
                    self.ns()
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    pub async fn logs(&self, inst: &Instance, tail: Option<usize>) -> Result<String> {
        let lp = LogParams {
            container: Some(obj::SCORING_CONTAINER.into()),
            tail_lines: tail.map(|n| n as i64),
            ..Default::default()
        };
        match self.api::<Pod>().logs(&inst.container, &lp).await {
            Ok(text) => Ok(text),
            Err(e) if status_code(&e) == Some(404) => Ok(String::new()),
            Err(e) => Err(self.err(format!("reading the log of {}", inst.container))(
                e,
            )),
        }
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Why a pod will not become ready without someone changing something.
fn pod_failure(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    for c in pod.status.as_ref()?.container_statuses.as_ref()? {
        let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = w.reason.as_deref().unwrap_or_default();
        let message = w.message.clone().unwrap_or_default();
        let exit = c
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| format!(" (last exit code {})", t.exit_code))
            .unwrap_or_default();
        match reason {
            "CrashLoopBackOff" => {
                return Some(format!(
                    "pod {name} keeps exiting{exit}: its container restarted {} time(s)",
                    c.restart_count
                ));
            }
            "ErrImageNeverPull" | "InvalidImageName" | "ImagePullBackOff" | "ErrImagePull" => {
                return Some(format!(
                    "pod {name} cannot get its image: {reason}: {message}\n  help: the image is not on the node; check the compute's `images:` setting (local, kind, minikube, registry)"
                ));
            }
            "CreateContainerConfigError" | "CreateContainerError" => {
                return Some(format!("pod {name} cannot start: {reason}: {message}"));
            }
            _ => {}
        }
    }
    None
}
