//! Endpoint intents mapped to Docker engine calls: networks, the router container,
//! scoring instances, their state and logs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, UploadToContainerOptions,
};
use futures_util::StreamExt;

use super::backend::{GenerationRequest, NotReady, StartError};
use super::controller::{DRAIN_SECONDS, log_tail};
use super::plan::{self, CONTAINER_PORT};
use super::{Credentials, EndpointRecord, Error, Instance, Result};
use crate::compute::labels;
use crate::serving::router::RouterConfig;

fn engine(doing: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Error {
    let doing = doing.into();
    move |source| Error::Engine { doing, source }
}

fn status(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// A container's state as far as readiness cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Exited(i64),
    Missing,
}

#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
    pub ws: String,
}

impl Engine {
    pub async fn ensure_network(&self, endpoint: &str) -> Result<()> {
        let name = plan::network_name(&self.ws, endpoint);
        if self.docker.inspect_network(&name, None).await.is_ok() {
            return Ok(());
        }
        let req = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([
                (labels::WORKSPACE.to_string(), self.ws.clone()),
                (plan::LABEL_ENDPOINT.to_string(), endpoint.to_string()),
            ])),
            ..Default::default()
        };
        match self.docker.create_network(req).await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(409) => Ok(()),
            Err(e) => Err(engine(format!("creating network {name}"))(e)),
        }
    }

    pub async fn remove_network(&self, endpoint: &str) -> Result<()> {
        let name = plan::network_name(&self.ws, endpoint);
        match self.docker.remove_network(&name).await {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(engine(format!("removing network {name}"))(e)),
        }
    }

    /// Creates (replacing a leftover of the same name), uploads `files` at `/`, starts.
    pub async fn run(
        &self,
        name: &str,
        body: ContainerCreateBody,
        files: Option<Vec<u8>>,
    ) -> Result<()> {
        let opts = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        if let Err(e) = self
            .docker
            .create_container(Some(opts.clone()), body.clone())
            .await
        {
            if status(&e) != Some(409) {
                return Err(engine(format!("creating container {name}"))(e));
            }
            self.remove(name).await?;
            self.docker
                .create_container(Some(opts), body)
                .await
                .map_err(engine(format!("creating container {name}")))?;
        }
        if let Some(tar) = files {
            self.upload(name, tar).await?;
        }
        if let Err(e) = self.docker.start_container(name, None).await {
            let _ = self.remove(name).await;
            return Err(engine(format!("starting container {name}"))(e));
        }
        Ok(())
    }

    /// Starts an existing, stopped container.
    pub async fn start(&self, name: &str) -> Result<()> {
        match self.docker.start_container(name, None).await {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(304) => Ok(()),
            Err(e) => Err(engine(format!("starting {name}"))(e)),
        }
    }

    pub async fn upload(&self, name: &str, tar: Vec<u8>) -> Result<()> {
        let opts = UploadToContainerOptions {
            path: "/".into(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(name, Some(opts), bollard::body_full(tar.into()))
            .await
            .map_err(engine(format!("copying files into {name}")))
    }

    pub async fn signal(&self, name: &str, signal: &str) -> Result<()> {
        let opts = KillContainerOptions {
            signal: signal.into(),
        };
        self.docker
            .kill_container(name, Some(opts))
            .await
            .map_err(engine(format!("sending {signal} to {name}")))
    }

    /// Stops with a grace period (the front drains in-flight requests on TERM), then removes.
    pub async fn stop_and_remove(&self, name: &str, grace_s: i32) -> Result<()> {
        let opts = bollard::query_parameters::StopContainerOptions {
            t: Some(grace_s),
            ..Default::default()
        };
        match self.docker.stop_container(name, Some(opts)).await {
            Ok(()) => {}
            Err(e) if matches!(status(&e), Some(304) | Some(404)) => {}
            Err(e) => return Err(engine(format!("stopping {name}"))(e)),
        }
        self.remove(name).await
    }

    pub async fn remove(&self, name: &str) -> Result<()> {
        let opts = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        match self.docker.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(engine(format!("removing {name}"))(e)),
        }
    }

    pub async fn state(&self, name: &str) -> Result<State> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => {
                let st = c.state.unwrap_or_default();
                // A container the engine keeps restarting is not up, whatever `running` says.
                Ok(if st.running == Some(true) && st.restarting != Some(true) {
                    State::Running
                } else {
                    State::Exited(st.exit_code.unwrap_or(-1))
                })
            }
            Err(e) if status(&e) == Some(404) => Ok(State::Missing),
            Err(e) => Err(engine(format!("inspecting {name}"))(e)),
        }
    }

    /// The instance's address on the endpoint network and its published loopback port.
    pub async fn instance(&self, name: &str, endpoint: &str) -> Result<Instance> {
        let c = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(engine(format!("inspecting {name}")))?;
        let net = plan::network_name(&self.ws, endpoint);
        let settings = c.network_settings.unwrap_or_default();
        let ip = settings
            .networks
            .as_ref()
            .and_then(|n| n.get(&net))
            .and_then(|n| n.ip_address.clone())
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| Error::Failed(format!("{name} has no address on network {net}")))?;
        let host_port = settings
            .ports
            .as_ref()
            .and_then(|p| p.get(&format!("{CONTAINER_PORT}/tcp")))
            .and_then(|b| b.as_ref())
            .and_then(|b| b.first())
            .and_then(|b| b.host_port.as_deref())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Ok(Instance {
            container: name.to_string(),
            address: format!("{ip}:{CONTAINER_PORT}"),
            host_port,
        })
    }

    /// The last `tail` lines of a container's output (stdout and stderr interleaved).
    pub async fn container_log(&self, name: &str, tail: Option<usize>) -> Result<String> {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
            ..Default::default()
        };
        let mut stream = self.docker.logs(name, Some(opts));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => out.extend_from_slice(&chunk.into_bytes()),
                Err(e) if status(&e) == Some(404) => break,
                Err(e) => return Err(engine(format!("reading the log of {name}"))(e)),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Names of this workspace's containers for `endpoint` (optionally one deployment).
    pub async fn containers(
        &self,
        endpoint: &str,
        deployment: Option<&str>,
    ) -> Result<Vec<String>> {
        let mut filters = vec![
            format!("{}={}", labels::WORKSPACE, self.ws),
            format!("{}={endpoint}", plan::LABEL_ENDPOINT),
        ];
        if let Some(d) = deployment {
            filters.push(format!("{}={d}", plan::LABEL_DEPLOYMENT));
        }
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), filters)])),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(engine("listing endpoint containers"))?;
        Ok(list
            .into_iter()
            .filter_map(|c| c.names.and_then(|n| n.first().cloned()))
            .map(|n| n.trim_start_matches('/').to_string())
            .collect())
    }
}

/// The endpoint operations of [`super::backend::Backend`] on the engine: a network per
/// endpoint, the router published on the endpoint's loopback port, one container per
/// instance.
impl Engine {
    pub(super) async fn start_router(
        &self,
        ep: &EndpointRecord,
        image: &str,
        config: &RouterConfig,
        _creds: &Credentials,
    ) -> Result<(), StartError> {
        self.ensure_network(&ep.name).await?;
        let body = plan::router_body(&self.ws, ep, image);
        let container = plan::router_name(&self.ws, &ep.name);
        self.run(&container, body, Some(plan::router_config_tar(config)))
            .await?;
        let url = format!("http://127.0.0.1:{}/", ep.port);
        let waited = wait_ready(
            self,
            &container,
            &url,
            Duration::from_secs(30),
            Duration::from_secs(2),
        )
        .await;
        if let Err(why) = waited {
            // Leave nothing behind: a router that restarts forever helps no one.
            let log = self
                .container_log(&container, Some(200))
                .await
                .unwrap_or_default();
            let _ = self.remove(&container).await;
            let _ = self.remove_network(&ep.name).await;
            return Err(StartError::NotReady(NotReady {
                instance: container,
                why,
                log,
            }));
        }
        Ok(())
    }

    /// The keys live only in the workspace's sealed store on this target.
    pub async fn store_keys(&self, _ep: &str, _creds: &Credentials) -> Result<()> {
        Ok(())
    }

    pub async fn router_problem(&self, ep: &str) -> Result<Option<String>> {
        let container = plan::router_name(&self.ws, ep);
        Ok(match self.state(&container).await? {
            State::Running => None,
            state => {
                let log = self
                    .container_log(&container, Some(200))
                    .await
                    .unwrap_or_default();
                Some(format!(
                    "its container is not running ({state:?}); its log ends with:\n    {}",
                    log_tail(&log, 25)
                ))
            }
        })
    }

    pub async fn router_log(&self, ep: &str) -> String {
        let container = plan::router_name(&self.ws, ep);
        self.container_log(&container, Some(200))
            .await
            .unwrap_or_default()
    }

    pub async fn push_config(&self, ep: &str, config: &RouterConfig) -> Result<()> {
        let container = plan::router_name(&self.ws, ep);
        self.upload(&container, plan::router_config_tar(config))
            .await?;
        self.signal(&container, "SIGHUP").await
    }

    pub(super) async fn start_generation(
        &self,
        req: &GenerationRequest<'_>,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Vec<Instance>, StartError> {
        let (ep, dep) = (&req.ep.name, &req.dep.name);
        let count = req.dep.spec.instance_count;
        let mut started = Vec::new();
        let outcome = async {
            for i in 0..count {
                let name = plan::instance_name(&self.ws, ep, dep, req.generation, i);
                progress(&format!("starting instance {}/{count}", i + 1));
                let body = plan::instance_body(
                    &self.ws,
                    req.dep,
                    req.ep,
                    req.image,
                    req.user.clone(),
                    req.limits,
                );
                started.push(name.clone());
                self.run(&name, body, None).await?;
            }
            let mut instances = Vec::new();
            for (i, name) in started.iter().enumerate() {
                progress(&format!(
                    "waiting for instance {}/{count} to be ready",
                    i + 1
                ));
                let inst = self.instance(name, ep).await?;
                let url = format!("http://127.0.0.1:{}/", inst.host_port);
                let probe = req.dep.spec.readiness_probe;
                if let Err(why) = wait_ready(
                    self,
                    name,
                    &url,
                    probe.deadline(),
                    Duration::from_secs(probe.timeout.max(1)),
                )
                .await
                {
                    let log = self
                        .container_log(name, Some(200))
                        .await
                        .unwrap_or_default();
                    return Err(StartError::NotReady(NotReady {
                        instance: name.clone(),
                        why,
                        log,
                    }));
                }
                instances.push(inst);
            }
            Ok(instances)
        }
        .await;
        if outcome.is_err() {
            for name in &started {
                let _ = self.remove(name).await;
            }
        }
        outcome
    }

    pub async fn remove_generation(
        &self,
        _ep: &str,
        _dep: &str,
        _generation: u32,
        instances: &[Instance],
        drain: bool,
    ) -> Result<()> {
        for inst in instances {
            if drain {
                self.stop_and_remove(&inst.container, DRAIN_SECONDS).await?;
            } else {
                self.remove(&inst.container).await?;
            }
        }
        Ok(())
    }

    pub async fn remove_deployment(&self, ep: &str, dep: &str) -> Result<()> {
        for c in self.containers(ep, Some(dep)).await? {
            self.stop_and_remove(&c, DRAIN_SECONDS).await?;
        }
        Ok(())
    }

    pub async fn remove_endpoint(&self, ep: &str) -> Result<()> {
        for c in self.containers(ep, None).await? {
            self.remove(&c).await?;
        }
        self.remove_network(ep).await
    }

    pub async fn logs(&self, inst: &Instance, tail: Option<usize>) -> Result<String> {
        self.container_log(&inst.container, tail).await
    }
}

/// Polls `url` until it answers 200, failing early when the container exits.
pub(super) async fn wait_ready(
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
