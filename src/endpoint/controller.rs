//! Endpoint and deployment operations: validated and stored at once, carried out in the
//! background with progress written to the record, one operation per endpoint at a time.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::backend::{Backend, StartError};
use super::docker::{Engine, State};
use super::forward::Forward;
use super::kubernetes::KubeEndpoints;
use super::plan;
use super::runtime::{self, Runtime};
use super::*;
use crate::build::BuildPlan;
use crate::build::docker::Builder;
use crate::compute::targets::Targets;
use crate::store::Store;
use crate::workspace::{Workspace, random_hex};

/// Seconds an old instance gets to finish its requests when replaced or deleted.
pub(super) const DRAIN_SECONDS: i32 = 10;

pub struct Controller {
    pub store: Arc<Store>,
    pub ws: Workspace,
    pub(super) engine: Engine,
    pub(super) builder: Builder,
    targets: Arc<Targets>,
    busy: Arc<Mutex<HashSet<String>>>,
    active: Arc<AtomicUsize>,
    /// Endpoints a heal pass is working on. Never refuses an operation: an operation
    /// waits for the pass (see [`Controller::wait_heal`]), and a pass gives way to it.
    healing: Arc<Mutex<HashSet<String>>>,
    /// Loopback listeners of cluster endpoints, by endpoint name.
    forwards: Mutex<std::collections::HashMap<String, Forward>>,
    /// How `tug-infsrv` starts in the router image, once known.
    router_exec: tokio::sync::OnceCell<Vec<String>>,
}

/// Marks an endpoint busy for as long as it lives.
pub(super) struct BusyGuard {
    busy: Arc<Mutex<HashSet<String>>>,
    active: Arc<AtomicUsize>,
    endpoint: String,
}
impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.busy.lock().unwrap().remove(&self.endpoint);
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn sha_hex(s: &str) -> String {
    crate::snapshot::sha256_hex(s.as_bytes())
}

/// The `tug-infsrv` binary shipped into images: `$TUG_INFSRV`, else next to this program.
pub fn infsrv_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TUG_INFSRV") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("tug-infsrv")))
        .unwrap_or_else(|| PathBuf::from("tug-infsrv"))
}

impl Controller {
    pub fn new(
        store: Arc<Store>,
        ws: Workspace,
        docker: bollard::Docker,
        ws_id: &str,
        targets: Arc<Targets>,
    ) -> Controller {
        Controller {
            store,
            ws,
            builder: Builder::new(docker.clone()),
            engine: Engine {
                docker,
                ws: ws_id.to_string(),
            },
            targets,
            busy: Arc::default(),
            active: Arc::default(),
            healing: Arc::default(),
            forwards: Mutex::default(),
            router_exec: tokio::sync::OnceCell::new(),
        }
    }

    /// Operations in progress (the server stays up while there are any).
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Cluster endpoints this server forwards to: it must stay up for them to answer.
    pub fn forwarding(&self) -> usize {
        self.forwards.lock().unwrap().len()
    }

    /// The workspace config's entry for `compute`, checked to be a target endpoints can use.
    pub(super) fn compute_config(
        &self,
        compute: &str,
    ) -> Result<crate::compute::config::TargetConfig> {
        let file = self.ws.config_path().display().to_string();
        let cfg = self
            .ws
            .read_config()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        cfg.target(compute, &file)
            .map_err(|e| Error::Invalid(e.to_string()))
    }

    /// Where an endpoint's router and instances run.
    pub(super) async fn backend(&self, ep: &EndpointRecord) -> Result<Backend> {
        let Some(compute) = &ep.compute else {
            return Ok(Backend::Docker(self.engine.clone()));
        };
        let cfg = self.compute_config(compute)?;
        if !cfg.is_kubernetes() {
            return Ok(Backend::Docker(self.engine.clone()));
        }
        let target = match self.targets.get(compute, &cfg).await? {
            crate::compute::Target::Kubernetes(t) => t,
            crate::compute::Target::Docker(_) => unreachable!("a kubernetes config"),
        };
        let exec = self
            .router_exec
            .get_or_try_init(|| async {
                let infsrv = self.infsrv().await?;
                Ok::<_, Error>(plan::router_command(&infsrv))
            })
            .await?
            .clone();
        Ok(Backend::Kubernetes(KubeEndpoints::new(
            target,
            &self.engine.ws,
            exec,
        )))
    }

    /// Starts the loopback listener of a cluster endpoint (once).
    pub(super) async fn ensure_forward(
        &self,
        ep: &EndpointRecord,
        kube: &KubeEndpoints,
    ) -> Result<()> {
        if self.forwards.lock().unwrap().contains_key(&ep.name) {
            return Ok(());
        }
        let (pods, selector) = kube.router_pods(&ep.name);
        let forward = super::forward::listen(ep.port, pods, selector)
            .await
            .map_err(|source| Error::Io {
                what: format!(
                    "listening on 127.0.0.1:{} for endpoint `{}` (is another program using the port? free it, or delete and create the endpoint to get another)",
                    ep.port, ep.name
                ),
                source,
            })?;
        // Two callers may have bound in turn only if the first dropped its listener; the
        // entry is whichever got here first.
        self.forwards
            .lock()
            .unwrap()
            .entry(ep.name.clone())
            .or_insert(forward);
        Ok(())
    }

    /// Waits until no heal pass works on `endpoint` (a pass that sees the endpoint busy
    /// stops before it writes, so this is at most one API call long).
    pub(super) async fn wait_heal(&self, endpoint: &str) {
        let start = Instant::now();
        while self.healing.lock().unwrap().contains(endpoint)
            && start.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Marks `endpoint` busy until the guard drops (the guard may move into a task).
    pub(super) fn claim(&self, endpoint: &str, what: &str) -> Result<BusyGuard> {
        let mut busy = self.busy.lock().unwrap();
        if !busy.insert(endpoint.to_string()) {
            return Err(Error::Busy(endpoint.to_string(), what.to_string()));
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        Ok(BusyGuard {
            busy: self.busy.clone(),
            active: self.active.clone(),
            endpoint: endpoint.to_string(),
        })
    }

    fn keys(&self) -> crate::secrets::SecretStore {
        crate::secrets::SecretStore::endpoint_keys(&self.ws.dir)
    }

    /// Where an earlier tug kept an endpoint's keys in plain text (mode 0600); read once
    /// and moved into the encrypted store.
    fn legacy_keys_path(&self, endpoint: &str) -> PathBuf {
        self.ws
            .dir
            .join("secrets")
            .join("endpoints")
            .join(format!("{endpoint}.json"))
    }

    fn write_keys(&self, endpoint: &str, creds: &Credentials) -> Result<()> {
        let json = serde_json::to_string(creds).expect("serializes");
        self.keys()
            .set(endpoint, &json)
            .map_err(|e| Error::Failed(format!("storing the keys of `{endpoint}`: {e}")))?;
        let _ = std::fs::remove_file(self.legacy_keys_path(endpoint));
        Ok(())
    }

    /// The endpoint's keys, decrypted from the workspace's endpoint key store.
    pub fn credentials(&self, endpoint: &str) -> Result<Credentials> {
        self.endpoint(endpoint)?;
        let failed = |e: &dyn std::fmt::Display| {
            Error::Failed(format!("reading the keys of `{endpoint}`: {e}"))
        };
        match self.keys().get(endpoint) {
            Ok(json) => serde_json::from_str(&json).map_err(|e| failed(&e)),
            Err(crate::secrets::Error::Missing(_)) => {
                let legacy = self.legacy_keys_path(endpoint);
                let bytes = std::fs::read(&legacy).map_err(|e| failed(&e))?;
                let creds: Credentials = serde_json::from_slice(&bytes).map_err(|e| failed(&e))?;
                self.write_keys(endpoint, &creds)?;
                Ok(creds)
            }
            Err(e) => Err(failed(&e)),
        }
    }

    pub fn endpoint(&self, name: &str) -> Result<EndpointRecord> {
        self.store
            .endpoint(name)?
            .ok_or_else(|| Error::NoEndpoint(name.to_string()))
    }

    pub fn deployment(&self, endpoint: &str, name: &str) -> Result<DeploymentRecord> {
        self.store
            .deployment(endpoint, name)?
            .ok_or_else(|| Error::NoDeployment {
                endpoint: endpoint.to_string(),
                deployment: name.to_string(),
            })
    }

    pub(super) fn set_endpoint_state(
        &self,
        name: &str,
        state: ProvisioningState,
        message: Option<String>,
    ) {
        if let Ok(Some(mut rec)) = self.store.endpoint(name) {
            rec.state = state;
            rec.message = message;
            rec.updated_at = crate::store::now();
            let _ = self.store.put_endpoint(&rec);
        }
    }

    pub(super) fn progress(&self, ep: &str, dep: &str, message: &str) {
        if let Ok(Some(mut rec)) = self.store.deployment(ep, dep) {
            rec.message = Some(message.to_string());
            rec.updated_at = crate::store::now();
            let _ = self.store.put_deployment(&rec);
        }
    }

    // ----------------------------------------------------------------- endpoints

    /// Stores the endpoint and starts provisioning its router.
    pub fn create_endpoint(self: &Arc<Self>, req: EndpointRequest) -> Result<EndpointRecord> {
        if !valid_endpoint_name(&req.name) {
            return Err(Error::BadName(req.name));
        }
        let mode = req.auth_mode.to_ascii_lowercase();
        if !matches!(mode.as_str(), "key" | "aml_token") {
            return Err(Error::AuthMode(req.auth_mode));
        }
        if self.store.endpoint(&req.name)?.is_some() {
            return Err(Error::EndpointExists(req.name));
        }
        check_traffic(&req.traffic, &req.mirror_traffic, &[])?;
        if let Some(compute) = &req.compute {
            self.compute_config(compute)?;
        }
        let guard = self.claim(&req.name, "create")?;
        let creds = Credentials {
            primary_key: random_hex(32),
            secondary_key: random_hex(32),
        };
        let port = free_port().map_err(|source| Error::Io {
            what: "choosing a loopback port for the endpoint".into(),
            source,
        })?;
        self.write_keys(&req.name, &creds)?;
        let now = crate::store::now();
        let rec = EndpointRecord {
            name: req.name.clone(),
            description: req.description,
            tags: req.tags,
            auth_mode: mode,
            traffic: BTreeMap::new(),
            mirror_traffic: BTreeMap::new(),
            state: ProvisioningState::Creating,
            message: Some("starting the router".into()),
            compute: req.compute,
            port,
            key_sha256: vec![sha_hex(&creds.primary_key), sha_hex(&creds.secondary_key)],
            external_base: None,
            created_at: now.clone(),
            updated_at: now,
        };
        self.store.put_endpoint(&rec)?;
        let me = self.clone();
        let name = rec.name.clone();
        tokio::spawn(async move {
            let _guard = guard;
            match me.provision_router(&name).await {
                Ok(()) => me.set_endpoint_state(&name, ProvisioningState::Succeeded, None),
                Err(e) => {
                    me.set_endpoint_state(&name, ProvisioningState::Failed, Some(e.to_string()))
                }
            }
        });
        Ok(rec)
    }

    /// `tug-infsrv` with what it needs to start in any image (see [`runtime`]).
    pub(super) async fn infsrv(&self) -> Result<Runtime> {
        let path = infsrv_path();
        let loaded = tokio::task::spawn_blocking(move || Runtime::load(&path))
            .await
            .map_err(|e| Error::Failed(format!("reading the scoring runtime: {e}")))?;
        match loaded {
            Err(runtime::Error::Read { path, source }) => Err(Error::Io {
                what: format!(
                    "reading the scoring runtime {} (build it with `cargo build --bin tug-infsrv`, or set TUG_INFSRV)",
                    path.display()
                ),
                source,
            }),
            other => Ok(other?),
        }
    }

    pub(super) async fn build(
        &self,
        plan: &plan::ImagePlan,
        what: &str,
        ep: &str,
        dep: Option<&str>,
    ) -> Result<()> {
        let build = BuildPlan {
            hash: plan.tag.clone(),
            tag: plan.tag.clone(),
            context: plan.context.clone(),
            dockerfile: "Dockerfile".into(),
            labels: plan.labels.clone(),
        };
        let mut last = Instant::now();
        let mut progress = |line: &str| {
            if let Some(dep) = dep
                && last.elapsed() > Duration::from_millis(500)
            {
                last = Instant::now();
                self.progress(ep, dep, &format!("building {what}: {line}"));
            }
        };
        self.builder.ensure_plan(&build, &mut progress).await?;
        Ok(())
    }

    async fn provision_router(&self, name: &str) -> Result<()> {
        let ep = self.endpoint(name)?;
        let backend = self.backend(&ep).await?;
        let image = plan::router_image(&self.infsrv().await?);
        self.build(&image, "the router image", name, None).await?;
        let config = plan::router_config(&ep, &self.store.deployments(name)?);
        let creds = self.credentials(name)?;
        match backend.start_router(&ep, &image.tag, &config, &creds).await {
            Ok(()) => {}
            Err(StartError::Failed(e)) => return Err(e),
            Err(StartError::NotReady(n)) => {
                return Err(Error::Failed(format!(
                    "the endpoint's router did not start: {}\n  its log ends with:\n    {}\n  \
                     what was started for it was removed; fix the cause, then `tug online-endpoint delete -n {name}` and create it again",
                    n.why,
                    log_tail(&n.log, 25)
                )));
            }
        }
        if let Backend::Kubernetes(k) = &backend {
            self.ensure_forward(&ep, k).await?;
            if let Some(base) = k.external_base(name).await? {
                let mut rec = self.endpoint(name)?;
                rec.external_base = Some(base);
                self.store.put_endpoint(&rec)?;
            }
        }
        Ok(())
    }

    /// Fails unless the endpoint's router is running, with its log.
    pub(super) async fn check_router(&self, name: &str) -> Result<()> {
        let ep = self.endpoint(name)?;
        match self.backend(&ep).await?.router_problem(name).await? {
            None => Ok(()),
            Some(why) => Err(Error::Failed(format!(
                "the router of endpoint `{name}` is not running: {why}"
            ))),
        }
    }

    /// Waits until a request for `deployment` sent to the endpoint's published port is
    /// answered by one of its instances through the router, `answers` times in a row (the
    /// router spreads them over the instances). This is what "ready" means to a user.
    pub(super) async fn wait_routed(
        &self,
        name: &str,
        deployment: &str,
        answers: u32,
        deadline: Duration,
    ) -> Result<()> {
        let ep = self.endpoint(name)?;
        let backend = self.backend(&ep).await?;
        let key = self.credentials(name)?.primary_key;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .map_err(|e| Error::Failed(e.to_string()))?;
        let url = format!("{}/", ep.loopback_base());
        let start = Instant::now();
        let mut in_a_row = 0;
        let mut checked = Instant::now();
        let why = loop {
            let reply = client
                .get(&url)
                .bearer_auth(&key)
                .header(DEPLOYMENT_HEADER, deployment)
                .send()
                .await;
            let last = match reply {
                Ok(r)
                    if r.status().is_success()
                        && r.headers()
                            .get(DEPLOYMENT_HEADER)
                            .and_then(|v| v.to_str().ok())
                            == Some(deployment) =>
                {
                    in_a_row += 1;
                    if in_a_row >= answers.max(1) {
                        return Ok(());
                    }
                    continue;
                }
                Ok(r) => format!("the router answered {}", r.status()),
                Err(e) => format!("{e}"),
            };
            in_a_row = 0;
            if start.elapsed() > deadline {
                break format!("not answering after {} s ({last})", deadline.as_secs());
            }
            if checked.elapsed() > Duration::from_secs(2) {
                checked = Instant::now();
                if let Some(problem) = backend.router_problem(name).await? {
                    break format!("the router is down: {problem}");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        Err(Error::Failed(format!(
            "deployment `{deployment}` is up but endpoint `{name}` does not answer for it on {url}: {why}\n  \
             the router's log ends with:\n    {}",
            log_tail(&backend.router_log(name).await, 25)
        )))
    }

    /// Writes the router's configuration from the store and tells it to reload.
    pub(super) async fn reload_router(&self, name: &str) -> Result<()> {
        let ep = self.endpoint(name)?;
        let ready: Vec<DeploymentRecord> = self.store.deployments(name)?;
        let config = plan::router_config(&ep, &ready);
        self.backend(&ep).await?.push_config(name, &config).await
    }

    /// Changes traffic, mirror traffic, description or tags.
    pub async fn update_endpoint(
        &self,
        name: &str,
        patch: EndpointPatch,
    ) -> Result<EndpointRecord> {
        let _guard = self.claim(name, "update")?;
        self.wait_heal(name).await;
        let mut ep = self.endpoint(name)?;
        let deps = self.store.deployments(name)?;
        let names: Vec<&str> = deps.iter().map(|d| d.name.as_str()).collect();
        let traffic = patch.traffic.unwrap_or_else(|| ep.traffic.clone());
        let mirror = patch
            .mirror_traffic
            .unwrap_or_else(|| ep.mirror_traffic.clone());
        check_traffic(&traffic, &mirror, &names)?;
        ep.traffic = traffic;
        ep.mirror_traffic = mirror;
        if patch.description.is_some() {
            ep.description = patch.description;
        }
        if let Some(t) = patch.tags {
            ep.tags = t;
        }
        ep.updated_at = crate::store::now();
        self.store.put_endpoint(&ep)?;
        self.reload_router(name).await?;
        Ok(ep)
    }

    /// New keys for `primary` or `secondary`; the router accepts them at once.
    pub async fn regenerate_key(&self, name: &str, which: &str) -> Result<Credentials> {
        let _guard = self.claim(name, "regenerate-keys")?;
        self.wait_heal(name).await;
        let mut creds = self.credentials(name)?;
        match which {
            "primary" => creds.primary_key = random_hex(32),
            "secondary" => creds.secondary_key = random_hex(32),
            other => {
                return Err(Error::Invalid(format!(
                    "--key-type `{other}`: use primary or secondary"
                )));
            }
        }
        self.write_keys(name, &creds)?;
        let mut ep = self.endpoint(name)?;
        // The retired key must not stay readable where the keys are kept.
        self.backend(&ep).await?.store_keys(name, &creds).await?;
        ep.key_sha256 = vec![sha_hex(&creds.primary_key), sha_hex(&creds.secondary_key)];
        self.store.put_endpoint(&ep)?;
        self.reload_router(name).await?;
        // Instances check keys too (they are published on loopback): roll each deployment
        // so its instances hold the new hashes. The other key keeps working throughout,
        // which is why keys are rotated one at a time.
        for dep in self.store.deployments(name)? {
            if !dep.instances.is_empty() {
                self.roll(name, &dep.name, false).await?;
            }
        }
        Ok(creds)
    }

    /// Removes every container, the network, the keys and the records.
    pub async fn delete_endpoint(&self, name: &str) -> Result<()> {
        let _guard = self.claim(name, "delete")?;
        self.wait_heal(name).await;
        let ep = self.endpoint(name)?;
        self.set_endpoint_state(name, ProvisioningState::Deleting, None);
        self.forwards.lock().unwrap().remove(name);
        self.backend(&ep).await?.remove_endpoint(name).await?;
        let _ = self.keys().delete(name);
        let _ = std::fs::remove_file(self.legacy_keys_path(name));
        self.store.delete_endpoint(name)?;
        Ok(())
    }

    /// After a restart: operations that were cut off are marked failed, and routers that
    /// are not running are started again.
    pub async fn reconcile(&self) -> Result<()> {
        for ep in self.store.endpoints()? {
            if ep.state.is_busy() {
                self.set_endpoint_state(
                    &ep.name,
                    ProvisioningState::Failed,
                    Some(
                        "interrupted by a server restart; delete and create the endpoint again"
                            .into(),
                    ),
                );
            }
            for mut d in self.store.deployments(&ep.name)? {
                if d.state.is_busy() {
                    d.state = ProvisioningState::Failed;
                    d.message = Some("interrupted by a server restart; run `tug online-deployment update` to retry".into());
                    self.store.put_deployment(&d)?;
                }
            }
            // A cluster endpoint answers on loopback only while a server forwards for it.
            if ep.compute.is_some() && ep.state == ProvisioningState::Succeeded {
                let forwarded = match self.backend(&ep).await {
                    Ok(Backend::Kubernetes(k)) => self.ensure_forward(&ep, &k).await,
                    Ok(Backend::Docker(_)) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = forwarded {
                    tracing::warn!(endpoint = %ep.name, error = %e, "the endpoint's loopback port is not served");
                }
            }
        }
        Ok(())
    }
}

impl Controller {
    /// Brings endpoints back after the engine restarted or a container was stopped: starts
    /// routers and instances of ready deployments that are not running, and tells the
    /// router when an instance came back at another address. Endpoints with an operation
    /// in progress are left to it.
    pub async fn heal(&self) -> Result<usize> {
        let mut healed = 0;
        for ep in self.store.endpoints()? {
            if ep.state != ProvisioningState::Succeeded {
                continue;
            }
            // An operation in progress is left alone; one that starts during the pass
            // waits for it, and the pass writes nothing once it sees the operation.
            if self.busy.lock().unwrap().contains(&ep.name)
                || !self.healing.lock().unwrap().insert(ep.name.clone())
            {
                continue;
            }
            let outcome = self.heal_endpoint(&ep).await;
            self.healing.lock().unwrap().remove(&ep.name);
            match outcome {
                Ok(n) => healed += n,
                // One endpoint that cannot be healed (its cluster unreachable) must not
                // keep the others from it.
                Err(e) => {
                    tracing::warn!(endpoint = %ep.name, error = %e, "cannot heal the endpoint")
                }
            }
        }
        Ok(healed)
    }

    async fn heal_endpoint(&self, ep: &EndpointRecord) -> Result<usize> {
        if ep.compute.is_some()
            && let Backend::Kubernetes(k) = self.backend(ep).await?
        {
            return self.heal_cluster(ep, &k).await;
        }
        let mut healed = 0;
        let router = plan::router_name(&self.engine.ws, &ep.name);
        if let State::Exited(code) = self.engine.state(&router).await? {
            tracing::warn!(endpoint = %ep.name, code, "starting the endpoint's router again");
            self.engine.start(&router).await?;
            healed += 1;
        }
        let mut deployments = self.store.deployments(&ep.name)?;
        let mut moved = Vec::new();
        for (i, d) in deployments.iter_mut().enumerate() {
            if d.state != ProvisioningState::Succeeded {
                continue;
            }
            let mut changed = false;
            for inst in &mut d.instances {
                if let State::Exited(code) = self.engine.state(&inst.container).await? {
                    tracing::warn!(instance = %inst.container, code, "starting the instance again");
                    self.engine.start(&inst.container).await?;
                    healed += 1;
                }
                let now = self.engine.instance(&inst.container, &ep.name).await?;
                if now.address != inst.address || now.host_port != inst.host_port {
                    *inst = now;
                    changed = true;
                }
            }
            if changed {
                moved.push(i);
            }
        }
        Ok(healed + self.tell_router(ep, &deployments, &moved).await?)
    }

    /// The cluster restarts pods itself; what it cannot do is tell the router when a
    /// replaced pod came back at another address. This does, and keeps the listener up.
    async fn heal_cluster(&self, ep: &EndpointRecord, kube: &KubeEndpoints) -> Result<usize> {
        self.ensure_forward(ep, kube).await?;
        let mut deployments = self.store.deployments(&ep.name)?;
        let mut moved = Vec::new();
        for (i, d) in deployments.iter_mut().enumerate() {
            if d.state != ProvisioningState::Succeeded || d.instances.is_empty() {
                continue;
            }
            let now = kube.instances(&ep.name, &d.name, d.generation).await?;
            if !now.is_empty() && now != d.instances {
                tracing::info!(endpoint = %ep.name, deployment = %d.name, "instances moved; telling the router");
                d.instances = now;
                moved.push(i);
            }
        }
        self.tell_router(ep, &deployments, &moved).await
    }

    /// Gives the router the deployments' new addresses, then stores them: a push that
    /// fails leaves the records as they were, so the next pass tries again.
    async fn tell_router(
        &self,
        ep: &EndpointRecord,
        deployments: &[DeploymentRecord],
        moved: &[usize],
    ) -> Result<usize> {
        // An operation that started meanwhile pushes the current config itself.
        if moved.is_empty() || self.busy.lock().unwrap().contains(&ep.name) {
            return Ok(0);
        }
        let config = plan::router_config(ep, deployments);
        self.backend(ep)
            .await?
            .push_config(&ep.name, &config)
            .await?;
        // Only the addresses, and only where the record is still the one looked at.
        for &i in moved {
            let d = &deployments[i];
            if let Some(mut fresh) = self.store.deployment(&ep.name, &d.name)?
                && fresh.generation == d.generation
                && fresh.state == ProvisioningState::Succeeded
            {
                fresh.instances = d.instances.clone();
                self.store.put_deployment(&fresh)?;
            }
        }
        Ok(1)
    }
}

/// What `online-endpoint update` may change.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct EndpointPatch {
    #[serde(default)]
    pub traffic: Option<BTreeMap<String, u32>>,
    #[serde(default)]
    pub mirror_traffic: Option<BTreeMap<String, u32>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// A free loopback port (the kernel's choice), for the router to be published on.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The last `n` lines of a log, indented for an error message.
pub(super) fn log_tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n    ")
}

/// The header that names a deployment (Azure's), on requests and on routed answers.
const DEPLOYMENT_HEADER: &str = "azureml-model-deployment";
