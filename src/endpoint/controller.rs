//! Endpoint and deployment operations: validated and stored at once, carried out in the
//! background with progress written to the record, one operation per endpoint at a time.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::docker::{Engine, State};
use super::plan;
use super::*;
use crate::build::BuildPlan;
use crate::build::docker::Builder;
use crate::registry;
use crate::store::Store;
use crate::workspace::{Workspace, random_hex};

/// Seconds an old instance gets to finish its requests when replaced or deleted.
const DRAIN_SECONDS: i32 = 10;

pub struct Controller {
    pub store: Arc<Store>,
    pub ws: Workspace,
    engine: Engine,
    builder: Builder,
    busy: Mutex<HashSet<String>>,
    active: AtomicUsize,
}

/// Marks an endpoint busy for as long as it lives.
struct BusyGuard<'a>(&'a Controller, String);
impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.busy.lock().unwrap().remove(&self.1);
        self.0.active.fetch_sub(1, Ordering::SeqCst);
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
    ) -> Controller {
        Controller {
            store,
            ws,
            builder: Builder::new(docker.clone()),
            engine: Engine {
                docker,
                ws: ws_id.to_string(),
            },
            busy: Mutex::default(),
            active: AtomicUsize::new(0),
        }
    }

    /// Operations in progress (the server stays up while there are any).
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    fn claim(&self, endpoint: &str, what: &str) -> Result<BusyGuard<'_>> {
        let mut busy = self.busy.lock().unwrap();
        if !busy.insert(endpoint.to_string()) {
            return Err(Error::Busy(endpoint.to_string(), what.to_string()));
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        Ok(BusyGuard(self, endpoint.to_string()))
    }

    fn secrets_path(&self, endpoint: &str) -> PathBuf {
        self.ws
            .dir
            .join("secrets")
            .join("endpoints")
            .join(format!("{endpoint}.json"))
    }

    fn write_keys(&self, endpoint: &str, creds: &Credentials) -> Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = self.secrets_path(endpoint);
        let dir = path.parent().expect("has a parent");
        let io = |what: &str| {
            let what = format!("{what} {}", path.display());
            move |source| Error::Io { what, source }
        };
        std::fs::create_dir_all(dir).map_err(io("creating the folder of"))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        let tmp = dir.join(format!(".{endpoint}.{}", random_hex(4)));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("writing"))?;
        std::io::Write::write_all(&mut f, &serde_json::to_vec(creds).expect("serializes"))
            .map_err(io("writing"))?;
        std::fs::rename(&tmp, &path).map_err(io("writing"))
    }

    /// The endpoint's keys (from the workspace's 0600 secrets file).
    pub fn credentials(&self, endpoint: &str) -> Result<Credentials> {
        self.endpoint(endpoint)?;
        let path = self.secrets_path(endpoint);
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Failed(format!("{}: {e}", path.display())))
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

    fn set_endpoint_state(&self, name: &str, state: ProvisioningState, message: Option<String>) {
        if let Ok(Some(mut rec)) = self.store.endpoint(name) {
            rec.state = state;
            rec.message = message;
            rec.updated_at = crate::store::now();
            let _ = self.store.put_endpoint(&rec);
        }
    }

    fn progress(&self, ep: &str, dep: &str, message: &str) {
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
            port,
            key_sha256: vec![sha_hex(&creds.primary_key), sha_hex(&creds.secondary_key)],
            created_at: now.clone(),
            updated_at: now,
        };
        self.store.put_endpoint(&rec)?;
        std::mem::forget(guard);
        let me = self.clone();
        let name = rec.name.clone();
        tokio::spawn(async move {
            let _guard = BusyGuard(&me, name.clone());
            match me.provision_router(&name).await {
                Ok(()) => me.set_endpoint_state(&name, ProvisioningState::Succeeded, None),
                Err(e) => {
                    me.set_endpoint_state(&name, ProvisioningState::Failed, Some(e.to_string()))
                }
            }
        });
        Ok(rec)
    }

    async fn infsrv(&self) -> Result<Vec<u8>> {
        let path = infsrv_path();
        let bytes = tokio::fs::read(&path).await.map_err(|source| Error::Io {
            what: format!(
                "reading the scoring runtime {} (build it with `cargo build --bin tug-infsrv`, or set TUG_INFSRV)",
                path.display()
            ),
            source,
        })?;
        // A dynamically linked build carries the loader's path in its first page.
        if bytes.len() > 4096 && bytes[..4096].windows(8).any(|w| w == b"ld-linux") {
            tracing::warn!(
                "{} is dynamically linked: it runs only in images whose C library is as new as this host's; `make` builds it static",
                path.display()
            );
        }
        Ok(bytes)
    }

    async fn build(
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
        let image = plan::router_image(&self.infsrv().await?);
        self.build(&image, "the router image", name, None).await?;
        self.engine.ensure_network(name).await?;
        let config = plan::router_config(&ep, &self.store.deployments(name)?);
        let body = plan::router_body(&self.engine.ws, &ep, &image.tag);
        let container = plan::router_name(&self.engine.ws, name);
        self.engine
            .run(&container, body, Some(plan::router_config_tar(&config)))
            .await?;
        let url = format!("http://127.0.0.1:{}/", ep.port);
        wait_ready(
            &self.engine,
            &container,
            &url,
            Duration::from_secs(30),
            Duration::from_secs(2),
        )
        .await
        .map_err(|why| Error::Failed(format!("the endpoint's router did not start: {why}")))
    }

    /// Writes the router's configuration from the store and tells it to reload.
    async fn reload_router(&self, name: &str) -> Result<()> {
        let ep = self.endpoint(name)?;
        let ready: Vec<DeploymentRecord> = self.store.deployments(name)?;
        let config = plan::router_config(&ep, &ready);
        let container = plan::router_name(&self.engine.ws, name);
        self.engine
            .upload(&container, plan::router_config_tar(&config))
            .await?;
        self.engine.signal(&container, "SIGHUP").await
    }

    /// Changes traffic, mirror traffic, description or tags.
    pub async fn update_endpoint(
        &self,
        name: &str,
        patch: EndpointPatch,
    ) -> Result<EndpointRecord> {
        let _guard = self.claim(name, "update")?;
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
        ep.key_sha256 = vec![sha_hex(&creds.primary_key), sha_hex(&creds.secondary_key)];
        self.store.put_endpoint(&ep)?;
        self.reload_router(name).await?;
        // Instances check keys too: they get the new hashes when next replaced; until then
        // the router (which all scoring traffic goes through) is what enforces them.
        Ok(creds)
    }

    /// Removes every container, the network, the keys and the records.
    pub async fn delete_endpoint(&self, name: &str) -> Result<()> {
        let _guard = self.claim(name, "delete")?;
        self.endpoint(name)?;
        self.set_endpoint_state(name, ProvisioningState::Deleting, None);
        for c in self.engine.containers(name, None).await? {
            self.engine.remove(&c).await?;
        }
        self.engine.remove_network(name).await?;
        let _ = std::fs::remove_file(self.secrets_path(name));
        self.store.delete_endpoint(name)?;
        Ok(())
    }

    // ----------------------------------------------------------------- deployments

    /// Stores the deployment and starts building and starting it (or rolling it, for an update).
    pub fn apply_deployment(
        self: &Arc<Self>,
        sub: DeploymentSubmission,
        update: bool,
        all_traffic: bool,
    ) -> Result<DeploymentRecord> {
        let ep = self.endpoint(&sub.endpoint_name)?;
        if ep.state.is_busy() {
            return Err(Error::Busy(ep.name, format!("{:?}", ep.state)));
        }
        if sub.instance_count == 0 {
            return Err(Error::Invalid("instance_count must be at least 1".into()));
        }
        if let Some(ModelBinding::Registered { name, version }) = &sub.model {
            self.store
                .model(name, Some(version))?
                .ok_or_else(|| crate::store::Error::NoModel(format!("{name}:{version}")))?;
        }
        let existing = self.store.deployment(&ep.name, &sub.name)?;
        match (&existing, update) {
            (Some(_), false) => {
                return Err(Error::DeploymentExists {
                    endpoint: ep.name,
                    deployment: sub.name,
                });
            }
            (None, true) => {
                return Err(Error::NoDeployment {
                    endpoint: ep.name,
                    deployment: sub.name,
                });
            }
            _ => {}
        }
        let guard = self.claim(&ep.name, if update { "update" } else { "create" })?;
        let now = crate::store::now();
        let rec = match existing {
            Some(mut old) => {
                old.spec = sub;
                old.state = ProvisioningState::Updating;
                old.message = Some("queued".into());
                old.updated_at = now;
                old
            }
            None => DeploymentRecord {
                endpoint: ep.name.clone(),
                name: sub.name.clone(),
                spec: sub,
                state: ProvisioningState::Creating,
                message: Some("queued".into()),
                generation: 0,
                image: None,
                instances: vec![],
                created_at: now.clone(),
                updated_at: now,
            },
        };
        self.store.put_deployment(&rec)?;
        std::mem::forget(guard);
        let me = self.clone();
        let (ep_name, dep_name) = (rec.endpoint.clone(), rec.name.clone());
        tokio::spawn(async move {
            let _guard = BusyGuard(&me, ep_name.clone());
            let result = me.roll(&ep_name, &dep_name, all_traffic).await;
            if let Ok(Some(mut rec)) = me.store.deployment(&ep_name, &dep_name) {
                match result {
                    Ok(()) => {
                        rec.state = ProvisioningState::Succeeded;
                        rec.message = None;
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = %ep_name, deployment = %dep_name, error = %e, "deployment failed");
                        rec.state = ProvisioningState::Failed;
                        rec.message = Some(e.to_string());
                    }
                }
                rec.updated_at = crate::store::now();
                let _ = me.store.put_deployment(&rec);
            }
        });
        Ok(rec)
    }

    /// Builds the image, starts the next generation, waits for it, switches the router to
    /// it, then drains and removes the previous generation.
    async fn roll(&self, ep_name: &str, dep_name: &str, all_traffic: bool) -> Result<()> {
        let ep = self.endpoint(ep_name)?;
        let rec = self.deployment(ep_name, dep_name)?;
        let image = self.scoring_image(&rec).await?;
        let user = self.user_for(&image).await;
        let generation = rec.generation + 1;
        let count = rec.spec.instance_count;
        let mut started = Vec::new();
        let outcome = async {
            for i in 0..count {
                let name = plan::instance_name(&self.engine.ws, ep_name, dep_name, generation, i);
                self.progress(ep_name, dep_name, &format!("starting instance {}/{count}", i + 1));
                let body = plan::instance_body(
                    &self.engine.ws,
                    &rec,
                    &ep,
                    &image,
                    user.clone(),
                    &crate::compute::Limits::default(),
                );
                started.push(name.clone());
                self.engine.run(&name, body, None).await?;
            }
            let mut instances = Vec::new();
            for (i, name) in started.iter().enumerate() {
                self.progress(ep_name, dep_name, &format!("waiting for instance {}/{count} to be ready", i + 1));
                let inst = self.engine.instance(name, ep_name).await?;
                let url = format!("http://127.0.0.1:{}/", inst.host_port);
                let probe = rec.spec.readiness_probe;
                if let Err(why) = wait_ready(
                    &self.engine,
                    name,
                    &url,
                    probe.deadline(),
                    Duration::from_secs(probe.timeout.max(1)),
                )
                .await
                {
                    let log = self.engine.logs(name, Some(200)).await.unwrap_or_default();
                    let saved = self.save_log(ep_name, dep_name, name, &log);
                    let tail: Vec<&str> = log.lines().rev().take(25).collect::<Vec<_>>().into_iter().rev().collect();
                    return Err(Error::Failed(format!(
                        "instance {name} never became ready: {why}\n  its log ends with:\n    {}\n  full log: {} (or `tug online-deployment get-logs -e {ep_name} -n {dep_name}`)",
                        tail.join("\n    "),
                        saved.display()
                    )));
                }
                instances.push(inst);
            }
            Ok::<_, Error>(instances)
        }
        .await;
        let instances = match outcome {
            Ok(i) => i,
            Err(e) => {
                for name in &started {
                    let _ = self.engine.remove(name).await;
                }
                return Err(e);
            }
        };
        // Switch: the new generation serves before the old one stops.
        self.progress(
            ep_name,
            dep_name,
            "switching the router to the new instances",
        );
        let mut rec = self.deployment(ep_name, dep_name)?;
        let old: Vec<Instance> = std::mem::replace(&mut rec.instances, instances);
        rec.generation = generation;
        rec.image = Some(image);
        self.store.put_deployment(&rec)?;
        if all_traffic {
            let mut ep = self.endpoint(ep_name)?;
            ep.traffic = BTreeMap::from([(dep_name.to_string(), 100)]);
            ep.mirror_traffic.remove(dep_name);
            self.store.put_endpoint(&ep)?;
        }
        self.reload_router(ep_name).await?;
        self.progress(ep_name, dep_name, "stopping the previous instances");
        for inst in old {
            self.engine
                .stop_and_remove(&inst.container, DRAIN_SECONDS)
                .await?;
        }
        Ok(())
    }

    fn save_log(&self, ep: &str, dep: &str, container: &str, log: &str) -> PathBuf {
        let dir = self.ws.artifacts().join("endpoints").join(ep).join(dep);
        let path = dir.join(format!("{container}.log"));
        let _ = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, log));
        path
    }

    /// Ensures the environment image, then the scoring image on top of it; returns its tag.
    async fn scoring_image(&self, rec: &DeploymentRecord) -> Result<String> {
        let (ep, dep) = (rec.endpoint.as_str(), rec.name.as_str());
        self.progress(ep, dep, "preparing the environment image");
        let env = &rec.spec.environment;
        let context = match env {
            crate::run::model::ResolvedEnvironment::Build {
                context_snapshot, ..
            } => Some(
                std::fs::read(self.ws.snapshots().join(format!("{context_snapshot}.tar")))
                    .map_err(|source| Error::Io {
                        what: "reading the environment's build context".into(),
                        source,
                    })?,
            ),
            _ => None,
        };
        let mut last = Instant::now();
        let mut progress = |line: &str| {
            if last.elapsed() > Duration::from_millis(500) {
                last = Instant::now();
                self.progress(ep, dep, &format!("building the environment image: {line}"));
            }
        };
        let ensured = self
            .builder
            .ensure(
                env,
                context.as_deref(),
                &format!("deployment {ep}/{dep}"),
                &mut progress,
            )
            .await?;
        let env_id = self.builder.image_id(&ensured.tag).await?;
        let model = match &rec.spec.model {
            Some(ModelBinding::Registered { name, version }) => {
                let m = registry::resolve(
                    &self.store,
                    &registry::ModelRef {
                        name: name.clone(),
                        version: Some(version.clone()),
                    },
                )?;
                let tar = registry::model_tar(&self.ws, &m)?;
                Some((
                    m,
                    crate::snapshot::entries_from_tar(&tar).map_err(|source| Error::Io {
                        what: "reading the model".into(),
                        source,
                    })?,
                ))
            }
            None => None,
        };
        let code = match &rec.spec.code_snapshot {
            Some(sha) => {
                let tar = std::fs::read(self.ws.snapshots().join(format!("{sha}.tar"))).map_err(
                    |source| Error::Io {
                        what: "reading the code snapshot".into(),
                        source,
                    },
                )?;
                Some(
                    crate::snapshot::entries_from_tar(&tar).map_err(|source| Error::Io {
                        what: "reading the code snapshot".into(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let infsrv = self.infsrv().await?;
        let code_dir = rec.spec.code_dir.clone().unwrap_or_else(|| "code".into());
        let plan = plan::scoring_image(&plan::ScoringInputs {
            env_tag: &ensured.tag,
            env_image_id: &env_id,
            infsrv: &infsrv,
            model: model
                .as_ref()
                .map(|(m, e)| (m.name.as_str(), m.version.as_str(), e.as_slice())),
            code: code.as_ref().map(|e| (code_dir.as_str(), e.as_slice())),
            scoring_script: rec.spec.scoring_script.as_deref(),
        });
        self.progress(ep, dep, &format!("building the scoring image {}", plan.tag));
        self.build(&plan, "the scoring image", ep, Some(dep))
            .await?;
        Ok(plan.tag)
    }

    /// Non-root: the image's own USER when it has one, else tug's uid 1000.
    async fn user_for(&self, image: &str) -> Option<String> {
        let user = self
            .engine
            .docker
            .inspect_image(image)
            .await
            .ok()
            .and_then(|i| i.config)
            .and_then(|c| c.user)
            .unwrap_or_default();
        user.is_empty().then(|| "1000:1000".to_string())
    }

    /// Removes a deployment that receives no live traffic.
    pub async fn delete_deployment(&self, ep_name: &str, dep_name: &str) -> Result<()> {
        let _guard = self.claim(ep_name, "delete deployment")?;
        let mut ep = self.endpoint(ep_name)?;
        self.deployment(ep_name, dep_name)?;
        if ep.traffic.get(dep_name).copied().unwrap_or(0) > 0 {
            return Err(Error::Invalid(format!(
                "deployment `{dep_name}` still gets {}% of the traffic; move it first with `tug online-endpoint update -n {ep_name} --traffic \"other=100\"`",
                ep.traffic[dep_name]
            )));
        }
        ep.traffic.remove(dep_name);
        ep.mirror_traffic.remove(dep_name);
        self.store.put_endpoint(&ep)?;
        self.store.delete_deployment(ep_name, dep_name)?;
        self.reload_router(ep_name).await?;
        for c in self.engine.containers(ep_name, Some(dep_name)).await? {
            self.engine.stop_and_remove(&c, DRAIN_SECONDS).await?;
        }
        Ok(())
    }

    /// The instances' logs (the last `lines` of each), or the saved logs of failed ones.
    pub async fn deployment_logs(
        &self,
        ep_name: &str,
        dep_name: &str,
        lines: Option<usize>,
    ) -> Result<String> {
        let rec = self.deployment(ep_name, dep_name)?;
        let mut out = String::new();
        for inst in &rec.instances {
            out.push_str(&format!("==> {} <==\n", inst.container));
            out.push_str(&self.engine.logs(&inst.container, lines).await?);
        }
        let dir = self
            .ws
            .artifacts()
            .join("endpoints")
            .join(ep_name)
            .join(dep_name);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut saved: Vec<PathBuf> =
                entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            saved.sort();
            for p in saved {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let text: Vec<&str> = text.lines().collect();
                let from = lines.map_or(0, |n| text.len().saturating_sub(n));
                out.push_str(&format!(
                    "==> {} (failed instance, saved) <==\n",
                    p.display()
                ));
                out.push_str(&text[from..].join("\n"));
                out.push('\n');
            }
        }
        Ok(out)
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
        }
        Ok(())
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

/// Polls `url` until it answers 200, failing early when the container exits.
async fn wait_ready(
    engine: &Engine,
    container: &str,
    url: &str,
    deadline: Duration,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    loop {
        match engine.state(container).await {
            Ok(State::Running) => {}
            Ok(State::Exited(code)) => {
                return Err(format!("the container exited with code {code}"));
            }
            Ok(State::Missing) => return Err("the container disappeared".into()),
            Err(e) => return Err(e.to_string()),
        }
        let last = match client.get(url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("it answered {}", r.status()),
            Err(e) => format!("{e}"),
        };
        if start.elapsed() > deadline {
            return Err(format!("not ready after {} s ({last})", deadline.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
