//! Pure planning for endpoints: container and network names, the scoring and router image
//! contexts with their content-hash tags, the router's configuration, container bodies.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use sha2::{Digest, Sha256};

use super::runtime::Runtime;
use super::{DeploymentRecord, EndpointRecord};
use crate::compute::labels;
use crate::serving::router::{RouteDeployment, RouterConfig};
use crate::snapshot::{Entry, tar_bytes};

/// Bumped when the layout of scoring images changes, so old tags are not reused.
const SCORING_RECIPE: &str = "tug-scoring-1";
/// The port `tug-infsrv` listens on inside containers (azmlinfsrv's).
pub const CONTAINER_PORT: u16 = 5001;
/// Where things sit in a scoring image (Azure's layout).
pub const APP_ROOT: &str = "/var/azureml-app";
pub const INFSRV_PATH: &str = "/opt/tug/bin/tug-infsrv";
/// The loader and libraries of a dynamically linked `tug-infsrv` (empty when static).
pub const INFSRV_LIB: &str = "/opt/tug/lib";
/// The same two in the `FROM scratch` router image.
const ROUTER_BINARY: &str = "/tug-infsrv";
const ROUTER_LIB: &str = "/tug/lib";
/// The router reads this file; tug replaces it and sends SIGHUP.
pub const ROUTER_CONFIG_DIR: &str = "/etc/tug";
pub const ROUTER_CONFIG: &str = "/etc/tug/router.json";

/// `tug.role` values.
pub const ROLE_ROUTER: &str = "endpoint-router";
pub const ROLE_INSTANCE: &str = "deployment-instance";
pub const LABEL_ENDPOINT: &str = "tug.endpoint";
pub const LABEL_DEPLOYMENT: &str = "tug.deployment";

pub fn network_name(ws: &str, endpoint: &str) -> String {
    format!("tug-{ws}-ep-{endpoint}")
}

pub fn router_name(ws: &str, endpoint: &str) -> String {
    format!("tug-{ws}-ep-{endpoint}-router")
}

pub fn instance_name(
    ws: &str,
    endpoint: &str,
    deployment: &str,
    generation: u32,
    i: u32,
) -> String {
    format!("tug-{ws}-ep-{endpoint}-{deployment}-g{generation}-{i}")
}

fn sha(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    crate::workspace::hex(&h.finalize())
}

/// A build context and the tag it gets.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    pub tag: String,
    pub context: Vec<u8>,
    pub labels: BTreeMap<String, String>,
}

/// What goes into a scoring image besides the environment.
pub struct ScoringInputs<'a> {
    /// The environment image's tag and id (the id pins the content).
    pub env_tag: &'a str,
    pub env_image_id: &'a str,
    pub infsrv: &'a Runtime,
    /// `(name, version, tar whose paths start with the model's file or folder name)`.
    pub model: Option<(&'a str, &'a str, &'a [Entry])>,
    /// The code snapshot's entries and the folder name they keep.
    pub code: Option<(&'a str, &'a [Entry])>,
    pub scoring_script: Option<&'a str>,
}

/// The scoring image: environment + runtime + model + code, in that order (what changes
/// least comes first, so editing `score.py` rebuilds one small layer).
pub fn scoring_image(inp: &ScoringInputs<'_>) -> ImagePlan {
    let mut entries = inp.infsrv.entries("tug-infsrv", "tug-lib");
    let mut env = BTreeMap::new();
    entries.push(dir("azureml-models"));
    if let Some((name, version, files)) = inp.model {
        let base = format!("azureml-models/{name}/{version}");
        entries.push(dir(&format!("azureml-models/{name}")));
        entries.push(dir(&base));
        entries.extend(files.iter().map(|e| Entry {
            path: format!("{base}/{}", e.path),
            ..e.clone()
        }));
        env.insert("AZUREML_MODEL_DIR", format!("{APP_ROOT}/{base}"));
    }
    entries.push(dir("app"));
    let mut app_root = APP_ROOT.to_string();
    if let Some((code_dir, files)) = inp.code {
        entries.push(dir(&format!("app/{code_dir}")));
        entries.extend(files.iter().map(|e| Entry {
            path: format!("app/{code_dir}/{}", e.path),
            ..e.clone()
        }));
        app_root = format!("{APP_ROOT}/{code_dir}");
    }
    if let Some(script) = inp.scoring_script {
        let (folder, file) = match script.rsplit_once('/') {
            Some((d, f)) => (format!("/{d}"), f.to_string()),
            None => (String::new(), script.to_string()),
        };
        app_root.push_str(&folder);
        env.insert("AZUREML_ENTRY_SCRIPT", file);
    }
    env.insert("AML_APP_ROOT", app_root.clone());
    let env_line: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let libs = if inp.infsrv.libraries.is_empty() {
        String::new()
    } else {
        format!("COPY tug-lib/ {INFSRV_LIB}/\n")
    };
    let mut cmd = inp.infsrv.command(INFSRV_PATH, INFSRV_LIB);
    cmd.extend(["--host", "0.0.0.0", "--port"].map(String::from));
    cmd.push(CONTAINER_PORT.to_string());
    let dockerfile = format!(
        "FROM {from}\n\
         COPY tug-infsrv {INFSRV_PATH}\n\
         {libs}\
         COPY azureml-models/ {APP_ROOT}/azureml-models/\n\
         COPY app/ {APP_ROOT}/\n\
         ENV {env}\n\
         WORKDIR {app_root}\n\
         EXPOSE {CONTAINER_PORT}\n\
         ENTRYPOINT []\n\
         CMD {cmd}\n",
        from = inp.env_tag,
        env = env_line.join(" "),
        cmd = json_array(&cmd),
    );
    entries.push(Entry {
        path: "Dockerfile".into(),
        data: Some(dockerfile.into_bytes()),
        executable: false,
    });
    let context = tar_bytes(&entries, "", 0, 0);
    let hash = sha(&[
        SCORING_RECIPE.as_bytes(),
        inp.env_image_id.as_bytes(),
        &context,
    ]);
    ImagePlan {
        tag: format!("tug/score:{}", &hash[..24]),
        context,
        labels: BTreeMap::from([("tug.scoring.hash".to_string(), hash)]),
    }
}

/// The router image: nothing but `tug-infsrv` (with its loader and libraries when it is
/// dynamically linked).
pub fn router_image(infsrv: &Runtime) -> ImagePlan {
    let mut entries = infsrv.entries("tug-infsrv", "tug-lib");
    let libs = if infsrv.libraries.is_empty() {
        String::new()
    } else {
        format!("COPY tug-lib/ {ROUTER_LIB}/\n")
    };
    let mut entrypoint = infsrv.command(ROUTER_BINARY, ROUTER_LIB);
    entrypoint.push("router".into());
    let dockerfile = format!(
        "FROM scratch\nCOPY tug-infsrv {ROUTER_BINARY}\n{libs}USER 65534:65534\nENTRYPOINT {}\n",
        json_array(&entrypoint)
    );
    entries.push(Entry {
        path: "Dockerfile".into(),
        data: Some(dockerfile.into_bytes()),
        executable: false,
    });
    let context = tar_bytes(&entries, "", 0, 0);
    let hash = sha(&[b"tug-router-1", &context]);
    ImagePlan {
        tag: format!("tug/infsrv:{}", &hash[..24]),
        context,
        labels: BTreeMap::from([("tug.router.hash".to_string(), hash)]),
    }
}

/// How `tug-infsrv` starts in the router image (its entrypoint without `router`).
pub fn router_command(infsrv: &Runtime) -> Vec<String> {
    infsrv.command(ROUTER_BINARY, ROUTER_LIB)
}

/// A Dockerfile exec-form array.
fn json_array(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings serialize")
}

fn dir(path: &str) -> Entry {
    Entry {
        path: path.into(),
        data: None,
        executable: false,
    }
}

/// The router configuration for an endpoint and its ready deployments.
pub fn router_config(ep: &EndpointRecord, deployments: &[DeploymentRecord]) -> RouterConfig {
    RouterConfig {
        endpoint: ep.name.clone(),
        key_sha256: ep.key_sha256.clone(),
        deployments: deployments
            .iter()
            .filter(|d| !d.instances.is_empty())
            .map(|d| RouteDeployment {
                name: d.name.clone(),
                instances: d.instances.iter().map(|i| i.address.clone()).collect(),
                request_timeout_ms: d.spec.request_timeout_ms,
                max_concurrent_requests_per_instance: d.spec.max_concurrent_requests_per_instance,
            })
            .collect(),
        traffic: ep.traffic.clone(),
        mirror_traffic: ep.mirror_traffic.clone(),
    }
}

/// The router config as a tar holding `/etc/tug/router.json`, for upload into the container.
pub fn router_config_tar(cfg: &RouterConfig) -> Vec<u8> {
    let json = serde_json::to_vec_pretty(cfg).expect("config serializes");
    let entries = [
        dir("etc"),
        dir("etc/tug"),
        Entry {
            path: "etc/tug/router.json".into(),
            data: Some(json),
            executable: false,
        },
    ];
    tar_bytes(&entries, "", 65534, 65534)
}

fn base_labels(ws: &str, endpoint: &str, role: &str) -> HashMap<String, String> {
    HashMap::from([
        (labels::WORKSPACE.to_string(), ws.to_string()),
        (labels::ROLE.to_string(), role.to_string()),
        (LABEL_ENDPOINT.to_string(), endpoint.to_string()),
    ])
}

fn published(host_port: u16) -> HashMap<String, Option<Vec<PortBinding>>> {
    HashMap::from([(
        format!("{CONTAINER_PORT}/tcp"),
        Some(vec![PortBinding {
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(if host_port == 0 {
                String::new()
            } else {
                host_port.to_string()
            }),
        }]),
    )])
}

/// The router container: restarts with the engine (`always`: `unless-stopped` stays down
/// after an engine restart), so the endpoint outlives tug's server.
pub fn router_body(ws: &str, ep: &EndpointRecord, image: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec![
            "--config".into(),
            ROUTER_CONFIG.into(),
            "--host".into(),
            "0.0.0.0".into(),
            "--port".into(),
            CONTAINER_PORT.to_string(),
        ]),
        labels: Some(base_labels(ws, &ep.name, ROLE_ROUTER)),
        exposed_ports: Some(vec![format!("{CONTAINER_PORT}/tcp")]),
        host_config: Some(HostConfig {
            port_bindings: Some(published(ep.port)),
            network_mode: Some(network_name(ws, &ep.name)),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One scoring instance. Keys reach it as hashes only; user variables as environment.
pub fn instance_body(
    ws: &str,
    dep: &DeploymentRecord,
    ep: &EndpointRecord,
    image: &str,
    user: Option<String>,
    limits: &crate::compute::Limits,
) -> ContainerCreateBody {
    let mut env: BTreeMap<String, String> = dep.spec.environment_variables.clone();
    env.insert("TUG_AUTH_KEY_SHA256".into(), ep.key_sha256.join(","));
    env.entry("HOME".into()).or_insert_with(|| "/tmp".into());
    let mut labels = base_labels(ws, &ep.name, ROLE_INSTANCE);
    labels.insert(LABEL_DEPLOYMENT.into(), dep.name.clone());
    ContainerCreateBody {
        image: Some(image.to_string()),
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user,
        labels: Some(labels),
        exposed_ports: Some(vec![format!("{CONTAINER_PORT}/tcp")]),
        host_config: Some(HostConfig {
            port_bindings: Some(published(0)),
            network_mode: Some(network_name(ws, &ep.name)),
            nano_cpus: limits.nano_cpus,
            memory: limits.memory_bytes,
            init: Some(true),
            // Back with the engine after a restart, like the router; a crashed front is
            // restarted too (the router retries the other instances meanwhile).
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, data: &[u8]) -> Entry {
        Entry {
            path: path.into(),
            data: Some(data.to_vec()),
            executable: false,
        }
    }

    #[test]
    fn scoring_image_lays_out_model_and_code_like_azure() {
        let model = [entry("model.pkl", b"w")];
        let code = [entry("score.py", b"def init(): pass")];
        let inp = ScoringInputs {
            env_tag: "tug/env:abc",
            env_image_id: "sha256:1",
            infsrv: &Runtime::standalone(b"\x7fELF".to_vec()),
            model: Some(("digits", "3", &model)),
            code: Some(("src", &code)),
            scoring_script: Some("score.py"),
        };
        let plan = scoring_image(&inp);
        let files = crate::snapshot::entries_from_tar(&plan.context).unwrap();
        let paths: Vec<&str> = files.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"azureml-models/digits/3/model.pkl"));
        assert!(paths.contains(&"app/src/score.py"));
        let dockerfile = files.iter().find(|e| e.path == "Dockerfile").unwrap();
        let text = String::from_utf8(dockerfile.data.clone().unwrap()).unwrap();
        assert!(text.contains("AZUREML_MODEL_DIR=/var/azureml-app/azureml-models/digits/3"));
        assert!(text.contains("AML_APP_ROOT=/var/azureml-app/src"));
        assert!(text.contains("AZUREML_ENTRY_SCRIPT=score.py"));
        // Same inputs, same tag; a changed script, a new tag; another env image, a new tag.
        assert_eq!(scoring_image(&inp).tag, plan.tag);
        let code2 = [entry("score.py", b"def init(): return 1")];
        let changed = ScoringInputs {
            code: Some(("src", &code2)),
            ..inp
        };
        assert_ne!(scoring_image(&changed).tag, plan.tag);
        let other_env = ScoringInputs {
            env_image_id: "sha256:2",
            ..changed
        };
        assert_ne!(scoring_image(&other_env).tag, scoring_image(&changed).tag);
    }

    #[test]
    fn a_script_in_a_subfolder_moves_the_app_root() {
        let code = [entry("onlinescoring/score.py", b"")];
        let plan = scoring_image(&ScoringInputs {
            env_tag: "e",
            env_image_id: "i",
            infsrv: &Runtime::standalone(Vec::new()),
            model: None,
            code: Some(("model-1", &code)),
            scoring_script: Some("onlinescoring/score.py"),
        });
        let files = crate::snapshot::entries_from_tar(&plan.context).unwrap();
        let df = files.iter().find(|e| e.path == "Dockerfile").unwrap();
        let text = String::from_utf8(df.data.clone().unwrap()).unwrap();
        assert!(text.contains("AML_APP_ROOT=/var/azureml-app/model-1/onlinescoring"));
        assert!(!text.contains("AZUREML_MODEL_DIR"));
    }

    #[test]
    fn names_are_deterministic() {
        assert_eq!(network_name("ab12", "digits"), "tug-ab12-ep-digits");
        assert_eq!(router_name("ab12", "digits"), "tug-ab12-ep-digits-router");
        assert_eq!(
            instance_name("ab12", "digits", "blue", 2, 0),
            "tug-ab12-ep-digits-blue-g2-0"
        );
    }
}
