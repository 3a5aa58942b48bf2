//! Deployment operations: building the scoring image, starting a generation of
//! instances, waiting for readiness, switching the router, draining the old generation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backend::{Backend, GenerationRequest, StartError};
use super::controller::{Controller, log_tail};
use super::*;
use crate::registry;

impl Controller {
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
        let on_cluster = match &ep.compute {
            Some(c) => self.compute_config(c)?.is_kubernetes(),
            None => false,
        };
        if let Some(a) = &sub.autoscale
            && on_cluster
            && a.min_instances == 0
        {
            return Err(Error::Invalid(
                "`scale_settings.min_instances` is 0; a Kubernetes autoscaler keeps at least one instance\n  help: `min_instances: 1`".into(),
            ));
        }
        if sub.autoscale.is_some() && !on_cluster {
            return Err(Error::Invalid(format!(
                "`scale_settings: target_utilization` needs an endpoint on a Kubernetes compute target; endpoint `{}` runs on the local Docker engine\n  help: use `scale_settings: {{type: default}}` and `instance_count`",
                ep.name
            )));
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
        let me = self.clone();
        let (ep_name, dep_name) = (rec.endpoint.clone(), rec.name.clone());
        let autoscaled = rec.spec.autoscale.is_some();
        tokio::spawn(async move {
            let _guard = guard;
            let result = me.roll(&ep_name, &dep_name, all_traffic).await;
            let note = match &result {
                Ok(()) if autoscaled => me.autoscale_note(&ep_name).await,
                _ => None,
            };
            if let Ok(Some(mut rec)) = me.store.deployment(&ep_name, &dep_name) {
                match result {
                    Ok(()) => {
                        rec.state = ProvisioningState::Succeeded;
                        rec.message = note;
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
    pub(super) async fn roll(
        &self,
        ep_name: &str,
        dep_name: &str,
        all_traffic: bool,
    ) -> Result<()> {
        self.wait_heal(ep_name).await;
        let ep = self.endpoint(ep_name)?;
        let rec = self.deployment(ep_name, dep_name)?;
        let backend = self.backend(&ep).await?;
        self.check_router(ep_name).await?;
        let image = self.scoring_image(&rec, true).await?;
        let user = self.user_for(&image).await;
        let limits = self.instance_limits(&ep, &rec)?;
        // Secrets are decrypted into the instances' environment only (on a cluster, into
        // a Secret they read); logs that tug shows or keeps have their values masked.
        let (env, masker) = self.secrets().resolve(&rec.spec.environment_variables)?;
        let secret_env: BTreeMap<String, String> = env
            .iter()
            .filter(|(k, v)| rec.spec.environment_variables.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut resolved = rec.clone();
        resolved.spec.environment_variables = env;
        let generation = rec.generation + 1;
        let count = rec.spec.instance_count;
        let req = GenerationRequest {
            ep: &ep,
            dep: &resolved,
            secret_env,
            generation,
            image: &image,
            user,
            limits: &limits,
        };
        let progress = |m: &str| self.progress(ep_name, dep_name, m);
        let instances = match backend.start_generation(&req, &progress).await {
            Ok(i) => i,
            Err(StartError::Failed(e)) => return Err(e),
            Err(StartError::NotReady(n)) => {
                let log = masker.mask(&n.log).into_owned();
                let saved = self.save_log(ep_name, dep_name, &n.instance, &log);
                return Err(Error::Failed(format!(
                    "instance {} never became ready: {}\n  its log ends with:\n    {}\n  full log: {} (or `tug online-deployment get-logs -e {ep_name} -n {dep_name}`)",
                    n.instance,
                    n.why,
                    log_tail(&log, 25),
                    saved.display()
                )));
            }
        };
        // Switch: the new generation serves before the old one stops.
        self.progress(
            ep_name,
            dep_name,
            "switching the router to the new instances",
        );
        let before = self.deployment(ep_name, dep_name)?;
        let before_ep = self.endpoint(ep_name)?;
        let mut rec = before.clone();
        let old: Vec<Instance> = std::mem::replace(&mut rec.instances, instances);
        rec.generation = generation;
        rec.image = Some(image);
        self.store.put_deployment(&rec)?;
        if all_traffic {
            let mut ep = before_ep.clone();
            ep.traffic = BTreeMap::from([(dep_name.to_string(), 100)]);
            ep.mirror_traffic.remove(dep_name);
            self.store.put_endpoint(&ep)?;
        }
        // Ready means answering through the endpoint, as users call it: the instances
        // answered on their own ports, now the router must reach them.
        let routed = match self.reload_router(ep_name).await {
            Ok(()) => {
                self.progress(
                    ep_name,
                    dep_name,
                    "checking that the endpoint answers for it",
                );
                self.wait_routed(ep_name, dep_name, count, Duration::from_secs(30))
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = routed {
            // Back to the previous generation and traffic; the new instances go.
            self.store.put_deployment(&before)?;
            self.store.put_endpoint(&before_ep)?;
            let _ = self.reload_router(ep_name).await;
            let _ = backend
                .remove_generation(ep_name, dep_name, generation, &rec.instances, false)
                .await;
            return Err(e);
        }
        self.progress(ep_name, dep_name, "stopping the previous instances");
        if before.generation > 0 {
            backend
                .remove_generation(ep_name, dep_name, before.generation, &old, true)
                .await?;
        }
        Ok(())
    }

    /// The Kubernetes objects a deployment would become (`--dry-run -o yaml`), with the
    /// scoring image built so its tag is real; nothing is applied and no record changes.
    /// Secret values are not decrypted: the Secret names them.
    pub async fn plan_deployment(
        &self,
        sub: DeploymentSubmission,
    ) -> Result<Vec<serde_json::Value>> {
        let ep = self.endpoint(&sub.endpoint_name)?;
        let Backend::Kubernetes(kube) = self.backend(&ep).await? else {
            return Err(Error::Invalid(format!(
                "--dry-run prints the Kubernetes objects of a deployment, and endpoint `{}` runs on the local Docker engine (give the endpoint `compute:` a Kubernetes target)",
                ep.name
            )));
        };
        let generation = self
            .store
            .deployment(&ep.name, &sub.name)?
            .map_or(0, |d| d.generation);
        let now = crate::store::now();
        let rec = DeploymentRecord {
            endpoint: ep.name.clone(),
            name: sub.name.clone(),
            spec: sub,
            state: ProvisioningState::Creating,
            message: None,
            generation,
            image: None,
            instances: vec![],
            created_at: now.clone(),
            updated_at: now,
        };
        let image = self.scoring_image(&rec, false).await?;
        let user = self.user_for(&image).await;
        let limits = self.instance_limits(&ep, &rec)?;
        let secret_env = rec
            .spec
            .environment_variables
            .iter()
            .filter(|(_, v)| crate::secrets::reference(v).is_some())
            .map(|(k, v)| (k.clone(), format!("<set by tug from {v}>")))
            .collect();
        let req = GenerationRequest {
            ep: &ep,
            dep: &rec,
            secret_env,
            generation: generation + 1,
            image: &image,
            user,
            limits: &limits,
        };
        let objects = kube.plan_generation(&req).await?;
        if req.dep.spec.autoscale.is_some()
            && !objects
                .iter()
                .any(|o| o["kind"] == "HorizontalPodAutoscaler")
        {
            return Err(Error::Invalid(format!(
                "`scale_settings: target_utilization` needs the autoscaling/v2 (or v2beta2) API, which compute `{}` does not serve",
                ep.compute.clone().unwrap_or_default()
            )));
        }
        Ok(objects)
    }

    /// What a user must know about an autoscaled deployment's cluster: without a metrics
    /// API the autoscaler cannot read utilization and keeps `min_instances`.
    async fn autoscale_note(&self, ep_name: &str) -> Option<String> {
        let ep = self.endpoint(ep_name).ok()?;
        match self.backend(&ep).await.ok()? {
            Backend::Kubernetes(k) if !k.serves_metrics().await => Some(
                "autoscaling: the cluster serves no metrics API (metrics.k8s.io, from metrics-server), so the HorizontalPodAutoscaler cannot read CPU utilization and keeps min_instances; install metrics-server to scale".into(),
            ),
            _ => None,
        }
    }

    fn secrets(&self) -> crate::secrets::SecretStore {
        crate::secrets::SecretStore::new(&self.ws.dir)
    }

    fn save_log(&self, ep: &str, dep: &str, container: &str, log: &str) -> PathBuf {
        let dir = self.ws.artifacts().join("endpoints").join(ep).join(dep);
        let path = dir.join(format!("{container}.log"));
        let _ = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, log));
        path
    }

    /// Ensures the environment image, then the scoring image on top of it; returns its tag.
    /// `report`: progress goes to the deployment's record (not for a dry run, which must
    /// leave a live deployment's record alone).
    async fn scoring_image(&self, rec: &DeploymentRecord, report: bool) -> Result<String> {
        let (ep, dep) = (rec.endpoint.as_str(), rec.name.as_str());
        let say = |m: &str| {
            if report {
                self.progress(ep, dep, m)
            }
        };
        say("preparing the environment image");
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
                say(&format!("building the environment image: {line}"));
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
        say(&format!("building the scoring image {}", plan.tag));
        self.build(&plan, "the scoring image", ep, report.then_some(dep))
            .await?;
        Ok(plan.tag)
    }

    /// cpu and memory for `instance_type` as the endpoint's compute target defines it.
    /// On Docker, Azure SKU names (`Standard_DS3_v2`) that the config does not define
    /// mean no limits: a file written for Azure deploys unchanged. On a cluster, no
    /// `instance_type` is Azure's `defaultinstancetype`, and `resources` has the last word.
    fn instance_limits(
        &self,
        ep: &EndpointRecord,
        rec: &DeploymentRecord,
    ) -> Result<crate::compute::Limits> {
        use crate::compute::config;
        let compute = ep.compute.clone().unwrap_or_else(|| "local".into());
        let target = self.compute_config(&compute)?;
        let kube = target.is_kubernetes();
        if let Some(name) = &rec.spec.instance_type
            && !kube
            && !target.instance_types.contains_key(name)
        {
            tracing::info!(instance_type = %name, "not defined in the workspace config: no limits");
            return Ok(Default::default());
        }
        if rec.spec.instance_type.is_none() && !kube {
            return Ok(Default::default());
        }
        let res = crate::run::model::Resources {
            instance_count: None,
            instance_type: rec.spec.instance_type.clone(),
            shm_size: None,
        };
        let mut limits =
            config::limits(&compute, &target, &res).map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(r) = &rec.spec.resources {
            apply_resources(&mut limits, r)?;
        }
        if limits.gpus.is_some() && !kube {
            return Err(Error::Invalid(format!(
                "instance type `{}` asks for GPUs; GPU deployments are not supported on Docker by tug yet",
                rec.spec.instance_type.clone().unwrap_or_default()
            )));
        }
        Ok(limits)
    }

    /// Non-root: the image's own USER when it names a non-root one, else tug's uid 1000
    /// (environment images end with `USER root` from their install steps; serving only reads).
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
        let name = user.split(':').next().unwrap_or_default();
        match name {
            "" | "root" | "0" => Some("1000:1000".to_string()),
            _ => None,
        }
    }

    /// Removes a deployment that receives no live traffic.
    pub async fn delete_deployment(&self, ep_name: &str, dep_name: &str) -> Result<()> {
        let _guard = self.claim(ep_name, "delete deployment")?;
        self.wait_heal(ep_name).await;
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
        self.backend(&ep)
            .await?
            .remove_deployment(ep_name, dep_name)
            .await
    }

    /// The instances' logs (the last `lines` of each), or the saved logs of failed ones.
    pub async fn deployment_logs(
        &self,
        ep_name: &str,
        dep_name: &str,
        lines: Option<usize>,
    ) -> Result<String> {
        let rec = self.deployment(ep_name, dep_name)?;
        let backend = self.backend(&self.endpoint(ep_name)?).await?;
        let masker = self.secrets().masker(&rec.spec.environment_variables);
        let mut out = String::new();
        for inst in &rec.instances {
            out.push_str(&format!("==> {} <==\n", inst.container));
            let log = backend.logs(inst, lines).await?;
            out.push_str(&masker.mask(&log));
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
}

/// A deployment's `resources` over the instance type's: each value given replaces it.
fn apply_resources(
    limits: &mut crate::compute::Limits,
    r: &crate::spec::ResourceRequirements,
) -> Result<()> {
    use crate::compute::config::{parse_bytes, parse_cpu};
    let bad = |field: &str, v: &str| {
        Error::Invalid(format!(
            "`resources.{field}: {v}` is not a quantity tug can read; write e.g. `cpu: 500m` or `memory: 2Gi`"
        ))
    };
    if let Some(l) = &r.limits {
        if let Some(c) = &l.cpu {
            limits.nano_cpus = Some(parse_cpu(c).ok_or_else(|| bad("limits.cpu", c))?);
        }
        if let Some(m) = &l.memory {
            limits.memory_bytes = Some(parse_bytes(m).ok_or_else(|| bad("limits.memory", m))?);
        }
        if let Some(g) = &l.gpu {
            limits.gpus = Some(g.parse().map_err(|_| bad("limits.nvidia.com/gpu", g))?);
        }
    }
    if let Some(q) = &r.requests {
        if let Some(c) = &q.cpu {
            limits.cpu_request_nanos = Some(parse_cpu(c).ok_or_else(|| bad("requests.cpu", c))?);
        }
        if let Some(m) = &q.memory {
            limits.memory_request_bytes =
                Some(parse_bytes(m).ok_or_else(|| bad("requests.memory", m))?);
        }
    }
    // A limit given alone lowers the instance type's request to it (a request above its
    // limit is refused by the API server).
    let lower = |req: &mut Option<i64>, lim: Option<i64>| {
        if let (Some(r), Some(l)) = (*req, lim)
            && r > l
        {
            *req = Some(l);
        }
    };
    lower(&mut limits.cpu_request_nanos, limits.nano_cpus);
    lower(&mut limits.memory_request_bytes, limits.memory_bytes);
    Ok(())
}
