//! From endpoint and deployment files to what the server runs (the client side of
//! `online-endpoint create` and `online-deployment create|update`): files read and
//! checked locally, code snapshotted and uploaded, model and environment references pinned.

use std::path::Path;

use anyhow::bail;

use crate::client::Client;
use crate::endpoint::{DeploymentSubmission, EndpointRequest};

/// Reads and validates an endpoint file.
pub fn endpoint_request(
    _cwd: &Path,
    file: &Path,
    _overrides: &[(String, String)],
) -> anyhow::Result<EndpointRequest> {
    bail!("{}: endpoint files are not read yet", file.display())
}

/// A deployment file, read and validated.
pub struct DeploymentFile;

pub fn load_deployment(
    _cwd: &Path,
    file: &Path,
    _overrides: &[(String, String)],
) -> anyhow::Result<DeploymentFile> {
    bail!("{}: deployment files are not read yet", file.display())
}

pub async fn deployment_submission(
    _client: &Client,
    _cwd: &Path,
    file: &Path,
    _spec: DeploymentFile,
) -> anyhow::Result<DeploymentSubmission> {
    bail!("{}: deployment files are not read yet", file.display())
}
