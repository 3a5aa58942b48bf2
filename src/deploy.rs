//! From model, endpoint and deployment files to what the server registers and runs (the
//! client side of `model create`, `online-endpoint create` and `online-deployment
//! create|update`): files read and checked locally, folders snapshotted and uploaded,
//! model and environment references pinned to versions.

use std::path::Path;

use anyhow::{Context, bail};

use crate::client::{Client, urlencode};
use crate::endpoint::{DeploymentSubmission, EndpointRequest, ModelBinding, Probe};
use crate::registry::{ModelOrigin, ModelRequest};
use crate::spec::{self, AssetVersion, ModelPath, ModelSpec, OnlineDeploymentSpec};
use crate::store::ModelRecord;
use crate::submit::{absolute, borrowed, read_spec_file, spec_error};

/// Reads and validates a model file.
pub fn load_model(
    cwd: &Path,
    file: &Path,
    overrides: &[(String, String)],
) -> anyhow::Result<ModelSpec> {
    let text = read_spec_file(cwd, file)?;
    spec::parse_model(file, &text, &borrowed(overrides)).map_err(spec_error)
}

/// Where a model's files come from, checked locally; a local path is named in
/// `origin.snapshot` until [`upload_model`] replaces it with the upload's hash.
pub fn model_origin(cwd: &Path, what: &str, path: &ModelPath) -> anyhow::Result<ModelOrigin> {
    Ok(match path {
        ModelPath::Local { path, .. } => {
            let local = absolute(cwd, path);
            let Ok(meta) = std::fs::metadata(&local) else {
                bail!(
                    "{what}: {} does not exist\n  help: a model path is relative to its file (or to the current folder for --path)",
                    local.display()
                );
            };
            let artifact = local
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .context("the model path has no file or folder name")?;
            ModelOrigin::Upload {
                snapshot: local.display().to_string(),
                artifact,
                is_file: meta.is_file(),
            }
        }
        ModelPath::RunArtifact { run_id, path } => ModelOrigin::RunOutput {
            run_id: run_id.clone(),
            path: path.clone(),
        },
        ModelPath::JobArtifact { job, path } => ModelOrigin::RunOutput {
            run_id: job.clone(),
            path: path.clone(),
        },
        ModelPath::JobOutput { job, output, path } => ModelOrigin::RunOutput {
            run_id: job.clone(),
            path: match path {
                Some(p) if !p.is_empty() => format!("named-outputs/{output}/{p}"),
                _ => format!("named-outputs/{output}"),
            },
        },
        other => bail!(
            "{what}: `{other}` is not on this machine; tug registers local files and run outputs\n  help: download the files first, then give their local path"
        ),
    })
}

/// The registration request for a model spec.
pub fn model_request(cwd: &Path, what: &str, m: ModelSpec) -> anyhow::Result<ModelRequest> {
    let origin = model_origin(cwd, what, &m.path)?;
    Ok(ModelRequest {
        name: m.name,
        version: m.version,
        model_type: m.model_type.as_str().to_string(),
        description: m.description,
        tags: m.tags,
        properties: m.properties,
        flavors: (!m.flavors.is_empty())
            .then(|| serde_json::to_value(&m.flavors).unwrap_or_default()),
        stage: m.stage,
        source: m.path.to_string(),
        origin,
    })
}

/// Uploads a local model (if the request names one) and registers it.
pub async fn register_model(client: &Client, mut req: ModelRequest) -> anyhow::Result<ModelRecord> {
    if let ModelOrigin::Upload { snapshot, .. } = &mut req.origin {
        let local = std::path::PathBuf::from(std::mem::take(snapshot));
        *snapshot = upload_tree(client, &local).await?;
    }
    Ok(client.post("/api/models", &req).await?)
}

/// Packs a local file or folder under its own name and uploads it; returns the snapshot hash.
async fn upload_tree(client: &Client, local: &Path) -> anyhow::Result<String> {
    let local = local.canonicalize()?;
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let entries = if local.is_file() {
        vec![crate::snapshot::Entry {
            path: name.clone(),
            data: Some(
                std::fs::read(&local).with_context(|| format!("reading {}", local.display()))?,
            ),
            executable: false,
        }]
    } else {
        let mut e = crate::snapshot::read_tree(&local)?;
        for x in &mut e {
            x.path = format!("{name}/{}", x.path);
        }
        e.push(crate::snapshot::Entry {
            path: name,
            data: None,
            executable: false,
        });
        e
    };
    let tar = crate::snapshot::tar_bytes(&entries, "", 0, 0);
    crate::submit::upload(client, tar).await
}

/// Reads and validates an endpoint file.
pub fn endpoint_request(
    cwd: &Path,
    file: &Path,
    overrides: &[(String, String)],
) -> anyhow::Result<EndpointRequest> {
    let text = read_spec_file(cwd, file)?;
    let ep = spec::parse_online_endpoint(file, &text, &borrowed(overrides)).map_err(spec_error)?;
    let f = file.display();
    let mode = ep.auth_mode.as_str().to_string();
    if mode == "aad_token" {
        bail!("{f}: `auth_mode: aad_token`: tug has no Entra ID; use `auth_mode: key`");
    }
    if !ep.traffic.is_empty() || !ep.mirror_traffic.is_empty() {
        tracing::warn!(
            "{f}: `traffic` is set when deployments exist: `tug online-deployment create --all-traffic` or `tug online-endpoint update --traffic`"
        );
    }
    Ok(EndpointRequest {
        name: ep.name,
        description: ep.description,
        tags: ep.tags,
        auth_mode: mode,
        traffic: Default::default(),
        mirror_traffic: Default::default(),
        compute: ep.compute,
    })
}

/// Reads and validates a deployment file.
pub fn load_deployment(
    cwd: &Path,
    file: &Path,
    overrides: &[(String, String)],
) -> anyhow::Result<OnlineDeploymentSpec> {
    let text = read_spec_file(cwd, file)?;
    let d = spec::parse_online_deployment(file, &text, &borrowed(overrides)).map_err(spec_error)?;
    let f = file.display();
    let Some(code) = &d.code_configuration else {
        bail!(
            "{f}: `code_configuration`: no-code deployments (MLflow or Triton models without a scoring script) are not supported by tug yet\n  help: add `code_configuration: {{code: ..., scoring_script: score.py}}`"
        );
    };
    let script = code.script_path().with_context(|| {
        format!(
            "{f}: `code_configuration.code: {}`: only a local folder can be the code",
            code.code.given
        )
    })?;
    if !absolute(cwd, &script).is_file() {
        bail!(
            "{f}: `code_configuration.scoring_script`: {} does not exist\n  help: `scoring_script` is relative to `code`, which is relative to the deployment file",
            absolute(cwd, &script).display()
        );
    }
    if d.environment.is_none() {
        bail!(
            "{f}: `environment`: a deployment with a scoring script needs an environment\n  help: add `environment: {{image: ..., conda_file: ...}}` or `environment: azureml:<name>@latest`"
        );
    }
    Ok(d)
}

/// Pins references, uploads the code and any inline model, and builds the submission.
pub async fn deployment_submission(
    client: &Client,
    cwd: &Path,
    file: &Path,
    d: OnlineDeploymentSpec,
) -> anyhow::Result<DeploymentSubmission> {
    let f = file.display().to_string();
    let code = d
        .code_configuration
        .as_ref()
        .expect("checked by load_deployment");
    let code_dir = absolute(
        cwd,
        code.code
            .local
            .as_ref()
            .expect("checked by load_deployment"),
    );
    let entries = crate::snapshot::read_folder(&code_dir)?;
    let code_name = code_dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "code".into());
    let env_ref = d.environment.as_ref().expect("checked by load_deployment");
    let (environment, context) =
        crate::submit::resolve_environment(client, cwd, &f, env_ref).await?;

    // The model last: an inline one is registered, and nothing should be registered for a
    // deployment that fails its checks.
    let model = match &d.model {
        None => None,
        Some(spec::ModelRef::Registered { name, version }) => {
            let v = match version {
                AssetVersion::Version(v) => v.as_str(),
                AssetVersion::Latest => "latest",
            };
            let rec: ModelRecord = client
                .get(&format!("/api/models/{}/{}", urlencode(name), urlencode(v)))
                .await
                .with_context(|| format!("{f}: `model`"))?;
            Some(ModelBinding::Registered {
                name: rec.name,
                version: rec.version,
            })
        }
        Some(spec::ModelRef::Registry { registry, name, .. }) => bail!(
            "{f}: `model`: `{name}` lives in the Azure ML registry `{registry}`, which tug cannot reach\n  help: download it and register it with `tug model create --name {name} --path <folder>`"
        ),
        Some(spec::ModelRef::Inline(inline)) => {
            let spec = inline
                .as_ref()
                .clone()
                .into_spec(&format!("{}-{}", d.endpoint_name, d.name));
            let req = model_request(cwd, &format!("{f}: `model.path`"), spec)?;
            let rec = register_model(client, req).await?;
            Some(ModelBinding::Registered {
                name: rec.name,
                version: rec.version,
            })
        }
    };
    let code_snapshot =
        crate::submit::upload(client, crate::snapshot::tar_bytes(&entries, "", 0, 0)).await?;
    let environment = crate::submit::finish_environment(client, environment, context).await?;
    let probe = |p: &spec::ProbeSettings| Probe {
        initial_delay: p.initial_delay as u64,
        period: p.period as u64,
        timeout: p.timeout as u64,
        failure_threshold: p.failure_threshold as u64,
    };
    let autoscale = match &d.scale_settings {
        spec::ScaleSettings::Default => None,
        spec::ScaleSettings::TargetUtilization {
            min_instances,
            max_instances,
            target_utilization_percentage,
            polling_interval,
        } => Some(crate::endpoint::Autoscale {
            min_instances: *min_instances,
            max_instances: *max_instances,
            target_utilization_percentage: *target_utilization_percentage,
            polling_interval: *polling_interval,
        }),
    };
    Ok(DeploymentSubmission {
        name: d.name.clone(),
        endpoint_name: d.endpoint_name.clone(),
        description: d.description.clone(),
        tags: d.tags.clone(),
        model,
        code_snapshot: Some(code_snapshot),
        code_dir: Some(code_name),
        scoring_script: Some(code.scoring_script.clone()),
        environment,
        environment_variables: {
            crate::submit::check_secrets(cwd, file, &d.environment_variables)?;
            d.environment_variables.clone()
        },
        instance_type: d.instance_type.clone(),
        instance_count: d.instance_count,
        request_timeout_ms: d.request_settings.request_timeout_ms as u64,
        max_concurrent_requests_per_instance: d
            .request_settings
            .max_concurrent_requests_per_instance,
        readiness_probe: probe(&d.readiness_probe),
        liveness_probe: probe(&d.liveness_probe),
        autoscale,
        resources: d.resources.clone(),
        source: Some(absolute(cwd, file).display().to_string()),
    })
}
