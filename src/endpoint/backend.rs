//! Where an endpoint's router and instances run: the local Docker engine or a cluster.
//! The controller says what it wants once (start a router, start a generation of
//! instances, switch the router, drain); each target carries it out on its own objects.

use std::collections::BTreeMap;

use super::docker::Engine;
use super::kubernetes::KubeEndpoints;
use super::{Credentials, DeploymentRecord, EndpointRecord, Error, Instance, Result};
use crate::compute::Limits;
use crate::serving::router::RouterConfig;

/// One generation of a deployment's instances, as the controller wants it.
pub(super) struct GenerationRequest<'a> {
    pub ep: &'a EndpointRecord,
    /// Environment values resolved (secrets decrypted).
    pub dep: &'a DeploymentRecord,
    /// The variables whose values are secrets, with their values (a cluster keeps them in
    /// a Secret; Docker has no such place and sets them on the container).
    pub secret_env: BTreeMap<String, String>,
    pub generation: u32,
    pub image: &'a str,
    pub user: Option<String>,
    pub limits: &'a Limits,
}

/// Why something a target started never became ready, with what it logged.
#[derive(Debug)]
pub(super) struct NotReady {
    pub instance: String,
    pub why: String,
    pub log: String,
}

#[derive(Debug)]
pub(super) enum StartError {
    Failed(Error),
    NotReady(NotReady),
}

impl From<Error> for StartError {
    fn from(e: Error) -> Self {
        StartError::Failed(e)
    }
}

#[derive(Clone)]
pub(super) enum Backend {
    Docker(Engine),
    Kubernetes(KubeEndpoints),
}

macro_rules! each {
    ($self:ident, $t:ident => $body:expr) => {
        match $self {
            Backend::Docker($t) => $body,
            Backend::Kubernetes($t) => $body,
        }
    };
}

impl Backend {
    /// Starts the endpoint's router with `config` and waits until it answers; leaves
    /// nothing behind when it does not.
    pub async fn start_router(
        &self,
        ep: &EndpointRecord,
        image: &str,
        config: &RouterConfig,
        creds: &Credentials,
    ) -> Result<(), StartError> {
        each!(self, t => t.start_router(ep, image, config, creds).await)
    }

    /// Keeps the target's copy of the keys current (a cluster has them in a Secret).
    pub async fn store_keys(&self, ep: &str, creds: &Credentials) -> Result<()> {
        each!(self, t => t.store_keys(ep, creds).await)
    }

    /// `None` while the router runs, else what is wrong with it (and its log).
    pub async fn router_problem(&self, ep: &str) -> Result<Option<String>> {
        each!(self, t => t.router_problem(ep).await)
    }

    /// The end of the router's log, for an error message.
    pub async fn router_log(&self, ep: &str) -> String {
        each!(self, t => t.router_log(ep).await)
    }

    /// Gives the running router a new config.
    pub async fn push_config(&self, ep: &str, config: &RouterConfig) -> Result<()> {
        each!(self, t => t.push_config(ep, config).await)
    }

    /// Starts a generation and waits until every instance is ready; on failure removes
    /// what it started.
    pub async fn start_generation(
        &self,
        req: &GenerationRequest<'_>,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Vec<Instance>, StartError> {
        each!(self, t => t.start_generation(req, progress).await)
    }

    /// Removes a generation's instances, draining their requests when `drain`.
    pub async fn remove_generation(
        &self,
        ep: &str,
        dep: &str,
        generation: u32,
        instances: &[Instance],
        drain: bool,
    ) -> Result<()> {
        each!(self, t => t.remove_generation(ep, dep, generation, instances, drain).await)
    }

    /// Removes every instance of a deployment, whatever its generation.
    pub async fn remove_deployment(&self, ep: &str, dep: &str) -> Result<()> {
        each!(self, t => t.remove_deployment(ep, dep).await)
    }

    /// Removes everything the endpoint has on the target.
    pub async fn remove_endpoint(&self, ep: &str) -> Result<()> {
        each!(self, t => t.remove_endpoint(ep).await)
    }

    /// The last `tail` lines an instance logged.
    pub async fn logs(&self, inst: &Instance, tail: Option<usize>) -> Result<String> {
        each!(self, t => t.logs(inst, tail).await)
    }
}
