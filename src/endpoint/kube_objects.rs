//! The Kubernetes objects an online endpoint becomes. Pure: records in, typed objects out.
//!
//! - The endpoint: a Secret with its two keys (for cluster users; the router holds hashes
//!   only), a ConfigMap with the router's config, the router Deployment (`tug-infsrv
//!   router`, one replica) and a Service in front of it.
//! - Each deployment generation: a Deployment of `instance_count` scoring pods with
//!   readiness and liveness probes on the inference server, a Secret with its secret
//!   environment values, and a HorizontalPodAutoscaler for `target_utilization` scaling.
//!   An update starts the next generation beside the current one, as on Docker: the router
//!   is switched once the new pods are ready, then the old generation is deleted.
//!
//! The router reaches instances by pod IP (every cluster routes pod to pod; Service IPs
//! need kube-proxy, which not every cluster runs). Its config lives in the pod's own
//! volume, seeded from the ConfigMap at start and replaced by an exec'd `tug-infsrv router
//! apply-config` (a mounted ConfigMap changes only at the kubelet's next sync).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, LocalObjectReference, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe as KubeProbe, SeccompProfile, Secret, SecretKeySelector,
    SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::plan::{CONTAINER_PORT, LABEL_DEPLOYMENT, LABEL_ENDPOINT, ROLE_INSTANCE, ROLE_ROUTER};
use super::{Autoscale, Credentials, DeploymentRecord, Probe};
use crate::compute::config::EndpointService;
use crate::compute::kubernetes::objects::{
    JobOptions, fixed_resources, label_value, resources, tolerations, user_ids,
};
use crate::compute::{Limits, labels};
use crate::serving::router::RouterConfig;

pub const LABEL_GENERATION: &str = "tug.generation";
/// The container names in tug's pods.
pub const ROUTER_CONTAINER: &str = "router";
pub const SCORING_CONTAINER: &str = "inference";
/// Where the router reads its config (the pod's own volume) and its seed (the ConfigMap).
pub const ROUTER_CONFIG_DIR: &str = "/etc/tug";
pub const ROUTER_CONFIG: &str = "/etc/tug/router.json";
const ROUTER_SEED: &str = "/etc/tug-seed/router.json";
/// The key of the router config in its ConfigMap.
const CONFIG_KEY: &str = "router.json";
/// The router image's user (`nobody`).
const ROUTER_UID: i64 = 65534;
/// Seconds a scoring pod gets to finish its requests after SIGTERM (the front drains).
pub const SCORING_GRACE_SECONDS: i64 = 30;

/// `name` if it is a DNS-1123 label (at most 63 characters), else a prefix of it and a
/// hash, so that distinct long names stay distinct.
pub fn dns_label(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_string();
    }
    let hash = &crate::snapshot::sha256_hex(name.as_bytes())[..10];
    format!("{}-{hash}", name[..52].trim_end_matches('-'))
}

/// A name part in lower case (object names are DNS labels; endpoint and deployment
/// names may have capitals).
fn lower(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// A short hash of the names, so that names joined with `-` stay distinct: endpoint
/// `a-b` with deployment `c` and endpoint `a` with deployment `b-c` would otherwise meet,
/// and so would `Digits` and `digits`.
fn tag(parts: &[&str]) -> String {
    crate::snapshot::sha256_hex(parts.join("\0").as_bytes())[..6].to_string()
}

/// The endpoint's objects share this prefix; its router Service carries it.
pub fn endpoint_name(ws: &str, endpoint: &str) -> String {
    dns_label(&format!(
        "tug-{ws}-ep-{}-{}",
        lower(endpoint),
        tag(&[endpoint])
    ))
}

pub fn router_name(ws: &str, endpoint: &str) -> String {
    dns_label(&format!("{}-router", endpoint_name(ws, endpoint)))
}

pub fn keys_name(ws: &str, endpoint: &str) -> String {
    dns_label(&format!("{}-keys", endpoint_name(ws, endpoint)))
}

/// One generation of a deployment: its Deployment, Secret and autoscaler share the name.
pub fn generation_name(ws: &str, endpoint: &str, deployment: &str, generation: u32) -> String {
    dns_label(&format!(
        "tug-{ws}-ep-{}-{}-{}-g{generation}",
        lower(endpoint),
        lower(deployment),
        tag(&[endpoint, deployment])
    ))
}

/// Labels of every object of an endpoint.
pub fn endpoint_labels(ws: &str, endpoint: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::WORKSPACE.to_string(), label_value(ws)),
        (LABEL_ENDPOINT.to_string(), label_value(endpoint)),
    ])
}

/// `key=value,...` for a label map.
pub fn selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn router_labels(ws: &str, endpoint: &str) -> BTreeMap<String, String> {
    let mut l = endpoint_labels(ws, endpoint);
    l.insert(labels::ROLE.to_string(), ROLE_ROUTER.to_string());
    l
}

/// Labels of a deployment's pods (every generation).
pub fn deployment_labels(ws: &str, endpoint: &str, deployment: &str) -> BTreeMap<String, String> {
    let mut l = endpoint_labels(ws, endpoint);
    l.insert(labels::ROLE.to_string(), ROLE_INSTANCE.to_string());
    l.insert(LABEL_DEPLOYMENT.to_string(), label_value(deployment));
    l
}

/// Labels of one generation's pods.
pub fn generation_labels(
    ws: &str,
    endpoint: &str,
    deployment: &str,
    generation: u32,
) -> BTreeMap<String, String> {
    let mut l = deployment_labels(ws, endpoint, deployment);
    l.insert(LABEL_GENERATION.to_string(), generation.to_string());
    l
}

fn meta(name: &str, opts: &JobOptions, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(opts.namespace.clone()),
        labels: Some(labels),
        ..Default::default()
    }
}

/// The endpoint's keys, for cluster users (`kubectl get secret ... -o yaml`).
pub fn keys_secret(ws: &str, endpoint: &str, creds: &Credentials, opts: &JobOptions) -> Secret {
    Secret {
        metadata: meta(
            &keys_name(ws, endpoint),
            opts,
            endpoint_labels(ws, endpoint),
        ),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                "primaryKey".to_string(),
                ByteString(creds.primary_key.clone().into_bytes()),
            ),
            (
                "secondaryKey".to_string(),
                ByteString(creds.secondary_key.clone().into_bytes()),
            ),
        ])),
        ..Default::default()
    }
}

/// The router's config, which a new router pod starts from.
pub fn router_config_map(
    ws: &str,
    endpoint: &str,
    config: &RouterConfig,
    opts: &JobOptions,
) -> ConfigMap {
    ConfigMap {
        metadata: meta(
            &router_name(ws, endpoint),
            opts,
            router_labels(ws, endpoint),
        ),
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_string(),
            serde_json::to_string_pretty(config).expect("config serializes"),
        )])),
        ..Default::default()
    }
}

fn http_probe(path: &str, p: &Probe) -> KubeProbe {
    KubeProbe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(i32::from(CONTAINER_PORT)),
            ..Default::default()
        }),
        initial_delay_seconds: Some(p.initial_delay as i32),
        period_seconds: Some(p.period.max(1) as i32),
        timeout_seconds: Some(p.timeout.max(1) as i32),
        success_threshold: Some(1),
        failure_threshold: Some(p.failure_threshold.max(1) as i32),
        ..Default::default()
    }
}

fn port() -> ContainerPort {
    ContainerPort {
        name: Some("http".into()),
        container_port: i32::from(CONTAINER_PORT),
        // 1.20's server-side apply needs the protocol (it keys the list).
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn locked_down() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The runtime's default seccomp filter (Pod Security `restricted` asks for it).
fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

fn pull_secrets(opts: &JobOptions) -> Option<Vec<LocalObjectReference>> {
    opts.image_pull_secret
        .as_ref()
        .map(|s| vec![LocalObjectReference { name: s.clone() }])
}

fn deployment(
    name: &str,
    opts: &JobOptions,
    labels: BTreeMap<String, String>,
    replicas: u32,
    pod: PodSpec,
) -> Deployment {
    Deployment {
        metadata: meta(name, opts, labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas as i32),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            // A new router pod must be ready before the old one goes (the image changes
            // with tug's version).
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(k8s_openapi::api::apps::v1::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The router: one replica of `tug-infsrv router` (a `FROM scratch` image, as `nobody`).
pub fn router_deployment(ws: &str, endpoint: &str, image: &str, opts: &JobOptions) -> Deployment {
    let name = router_name(ws, endpoint);
    let health = Probe {
        initial_delay: 0,
        period: 2,
        timeout: 2,
        failure_threshold: 3,
    };
    let container = Container {
        name: ROUTER_CONTAINER.into(),
        image: Some(image.to_string()),
        image_pull_policy: Some(opts.pull_policy.clone()),
        args: Some(
            [
                "--config",
                ROUTER_CONFIG,
                "--seed",
                ROUTER_SEED,
                "--host",
                "0.0.0.0",
                "--port",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([CONTAINER_PORT.to_string()])
            .collect(),
        ),
        ports: Some(vec![port()]),
        readiness_probe: Some(http_probe("/", &health)),
        liveness_probe: Some(http_probe(
            "/",
            &Probe {
                period: 10,
                ..health
            },
        )),
        resources: Some(fixed_resources(("50m", "32Mi"), ("1", "256Mi"))),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "config".into(),
                mount_path: ROUTER_CONFIG_DIR.into(),
                ..Default::default()
            },
            VolumeMount {
                name: "seed".into(),
                mount_path: "/etc/tug-seed".into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            ..locked_down()
        }),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        // The router drains in-flight requests on SIGTERM for up to 30 s.
        termination_grace_period_seconds: Some(35),
        security_context: Some(PodSecurityContext {
            run_as_user: Some(ROUTER_UID),
            run_as_group: Some(ROUTER_UID),
            run_as_non_root: Some(true),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        volumes: Some(vec![
            Volume {
                name: "config".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(Quantity("1Mi".into())),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "seed".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: name.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]),
        image_pull_secrets: pull_secrets(opts),
        ..Default::default()
    };
    deployment(&name, opts, router_labels(ws, endpoint), 1, pod)
}

/// The Service in front of the router: `ClusterIP` (tug reaches it by port-forward; a
/// cluster user by `kubectl port-forward svc/...` or an ingress of their own), or the
/// `NodePort`/`LoadBalancer` the compute config names.
pub fn router_service(
    ws: &str,
    endpoint: &str,
    service_type: EndpointService,
    opts: &JobOptions,
) -> Service {
    Service {
        metadata: meta(
            &endpoint_name(ws, endpoint),
            opts,
            endpoint_labels(ws, endpoint),
        ),
        spec: Some(ServiceSpec {
            type_: Some(service_type.as_str().into()),
            selector: Some(router_labels(ws, endpoint)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::Int(i32::from(CONTAINER_PORT))),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The scoring address a NodePort or LoadBalancer Service gives, once it has one: the
/// load balancer's first ingress on port 80, or a node's address (external before
/// internal) on the node port.
pub fn external_base(service: &Service, nodes: &[(String, String)]) -> Option<String> {
    let spec = service.spec.as_ref()?;
    match spec.type_.as_deref()? {
        "LoadBalancer" => {
            let ingress = service
                .status
                .as_ref()?
                .load_balancer
                .as_ref()?
                .ingress
                .as_ref()?
                .first()?;
            let host = ingress.ip.clone().or_else(|| ingress.hostname.clone())?;
            Some(format!("http://{host}:80"))
        }
        "NodePort" => {
            let port = spec.ports.as_ref()?.first()?.node_port?;
            let host = nodes
                .iter()
                .find(|(kind, _)| kind == "ExternalIP")
                .or_else(|| nodes.iter().find(|(kind, _)| kind == "InternalIP"))?;
            Some(format!("http://{}:{port}", host.1))
        }
        _ => None,
    }
}

/// What one generation of a deployment is made of.
pub struct GenerationSpec<'a> {
    pub ws: &'a str,
    pub deployment: &'a DeploymentRecord,
    /// The endpoint's key hashes (the instance checks keys too).
    pub key_sha256: &'a [String],
    pub generation: u32,
    pub image: &'a str,
    /// `uid:gid` for images whose own user is root.
    pub user: Option<String>,
    pub limits: &'a Limits,
    /// Environment variables whose values are secrets, by name, with their values.
    pub secret_env: BTreeMap<String, String>,
}

/// The generation's Secret of secret environment values, when it has any.
pub fn generation_secret(g: &GenerationSpec<'_>, opts: &JobOptions) -> Option<Secret> {
    if g.secret_env.is_empty() {
        return None;
    }
    let d = g.deployment;
    Some(Secret {
        metadata: meta(
            &generation_name(g.ws, &d.endpoint, &d.name, g.generation),
            opts,
            generation_labels(g.ws, &d.endpoint, &d.name, g.generation),
        ),
        type_: Some("Opaque".into()),
        data: Some(
            g.secret_env
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                .collect(),
        ),
        ..Default::default()
    })
}

/// The generation's Deployment: `instance_count` scoring pods (`min_instances` when
/// autoscaled), probed on the inference server's `/`.
pub fn generation_deployment(g: &GenerationSpec<'_>, opts: &JobOptions) -> Deployment {
    let d = g.deployment;
    let name = generation_name(g.ws, &d.endpoint, &d.name, g.generation);
    let mut env: Vec<EnvVar> = d
        .spec
        .environment_variables
        .iter()
        .filter(|(k, _)| !g.secret_env.contains_key(*k))
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            ..Default::default()
        })
        .collect();
    env.extend(g.secret_env.keys().map(|k| EnvVar {
        name: k.clone(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: name.clone(),
                key: k.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }));
    env.push(EnvVar {
        name: "TUG_AUTH_KEY_SHA256".into(),
        value: Some(g.key_sha256.join(",")),
        ..Default::default()
    });
    if !d.spec.environment_variables.contains_key("HOME") {
        env.push(EnvVar {
            name: "HOME".into(),
            value: Some("/tmp".into()),
            ..Default::default()
        });
    }
    let ids = user_ids(&g.user);
    let container = Container {
        name: SCORING_CONTAINER.into(),
        image: Some(g.image.to_string()),
        image_pull_policy: Some(opts.pull_policy.clone()),
        env: Some(env),
        ports: Some(vec![port()]),
        readiness_probe: Some(http_probe("/", &d.spec.readiness_probe)),
        liveness_probe: Some(http_probe("/", &d.spec.liveness_probe)),
        resources: resources(g.limits),
        // Serving only reads its files and listens on an unprivileged port.
        security_context: Some(locked_down()),
        ..Default::default()
    };
    let tolerations = tolerations(g.limits);
    let pod = PodSpec {
        containers: vec![container],
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(SCORING_GRACE_SECONDS),
        security_context: Some(PodSecurityContext {
            run_as_user: ids.map(|(u, _)| u),
            run_as_group: ids.map(|(_, g)| g),
            // The image's own user is non-root when tug gives none (see `user_for`).
            run_as_non_root: Some(ids.is_none_or(|(u, _)| u != 0)),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        node_selector: (!g.limits.node_selector.is_empty()).then(|| g.limits.node_selector.clone()),
        tolerations: (!tolerations.is_empty()).then_some(tolerations),
        image_pull_secrets: pull_secrets(opts),
        ..Default::default()
    };
    let replicas = match &d.spec.autoscale {
        Some(a) => a.min_instances,
        None => d.spec.instance_count,
    };
    deployment(
        &name,
        opts,
        generation_labels(g.ws, &d.endpoint, &d.name, g.generation),
        replicas,
        pod,
    )
}

/// The autoscaler of a generation with `target_utilization` scaling, as JSON: its API
/// group is `autoscaling/v2` from Kubernetes 1.23 and `autoscaling/v2beta2` before (the
/// same fields for CPU utilization), so the caller picks by the server's version.
pub fn generation_autoscaler(
    g: &GenerationSpec<'_>,
    autoscale: &Autoscale,
    api_version: &str,
    opts: &JobOptions,
) -> serde_json::Value {
    let d = g.deployment;
    let name = generation_name(g.ws, &d.endpoint, &d.name, g.generation);
    serde_json::json!({
        "apiVersion": api_version,
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(&name, opts, generation_labels(g.ws, &d.endpoint, &d.name, g.generation)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": autoscale.min_instances,
            "maxReplicas": autoscale.max_instances,
            "metrics": [{
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": autoscale.target_utilization_percentage
                    }
                }
            }]
        }
    })
}

/// The autoscaling API to use among the versions the server serves (its discovery, not
/// its version string, which a build from source may not carry): `v2` (1.23 and later),
/// else `v2beta2` (1.12 to 1.25); none when it serves neither.
pub fn autoscaling_api<S: AsRef<str>>(served: &[S]) -> Option<&'static str> {
    let has = |v: &str| served.iter().any(|s| s.as_ref() == v);
    if has("v2") {
        Some("autoscaling/v2")
    } else if has("v2beta2") {
        Some("autoscaling/v2beta2")
    } else {
        None
    }
}

/// The command that replaces a running router's config (`prefix` starts `tug-infsrv` as
/// the router image's entrypoint does).
pub fn apply_config_command(prefix: &[String], config: &RouterConfig) -> Vec<String> {
    let mut cmd = prefix.to_vec();
    cmd.extend(
        [
            "router",
            "apply-config",
            "--config",
            ROUTER_CONFIG,
            "--json",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    cmd.push(serde_json::to_string(config).expect("config serializes"));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{DeploymentSubmission, ProvisioningState};
    use crate::run::model::ResolvedEnvironment;

    fn opts() -> JobOptions {
        JobOptions {
            namespace: "ml".into(),
            pull_policy: "IfNotPresent".into(),
            image_pull_secret: None,
            host_paths: true,
            tracking_tunnel: false,
        }
    }

    pub(crate) fn record(autoscale: Option<Autoscale>) -> DeploymentRecord {
        DeploymentRecord {
            endpoint: "digits".into(),
            name: "blue".into(),
            spec: DeploymentSubmission {
                name: "blue".into(),
                endpoint_name: "digits".into(),
                description: None,
                tags: Default::default(),
                model: None,
                code_snapshot: None,
                code_dir: None,
                scoring_script: None,
                environment: ResolvedEnvironment::Image {
                    image: "tug/python:3.11-sklearn".into(),
                    conda_file: None,
                    pip_requirements: vec![],
                },
                environment_variables: BTreeMap::from([
                    ("MODE".into(), "fast".into()),
                    ("TOKEN".into(), "s3cret".into()),
                ]),
                instance_type: None,
                instance_count: 3,
                request_timeout_ms: 5000,
                max_concurrent_requests_per_instance: 1,
                readiness_probe: Probe::default(),
                liveness_probe: Probe {
                    initial_delay: 5,
                    ..Probe::default()
                },
                autoscale,
                resources: None,
                source: None,
            },
            state: ProvisioningState::Creating,
            message: None,
            generation: 1,
            image: None,
            instances: vec![],
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn spec<'a>(rec: &'a DeploymentRecord, limits: &'a Limits) -> GenerationSpec<'a> {
        GenerationSpec {
            ws: "0123456789ab",
            deployment: rec,
            key_sha256: &[],
            generation: 2,
            image: "tug/score:abc",
            user: Some("1000:1000".into()),
            limits,
            secret_env: BTreeMap::from([("TOKEN".into(), "s3cret".into())]),
        }
    }

    #[test]
    fn names_are_dns_labels_and_long_ones_stay_distinct() {
        let name = generation_name("0123456789ab", "digits", "blue", 2);
        assert!(
            name.starts_with("tug-0123456789ab-ep-digits-blue-") && name.ends_with("-g2"),
            "{name}"
        );
        // Names joined with `-` and names that differ in case stay apart.
        assert_ne!(
            generation_name("w", "a-b", "c", 1),
            generation_name("w", "a", "b-c", 1)
        );
        assert_ne!(router_name("w", "Digits"), router_name("w", "digits"));
        assert_eq!(
            router_name("w", "Digits"),
            router_name("w", "Digits").to_lowercase()
        );
        let long = "a".repeat(32);
        let a = generation_name("0123456789ab", &long, &long, 1);
        let b = generation_name("0123456789ab", &long, &long, 2);
        assert!(a.len() <= 63 && b.len() <= 63, "{a}");
        assert_ne!(a, b);
        assert!(router_name("0123456789ab", &long).len() <= 63);
    }

    #[test]
    fn secret_values_go_to_a_secret_and_the_pod_refers_to_it() {
        let rec = record(None);
        let limits = Limits::default();
        let g = spec(&rec, &limits);
        let dep = generation_deployment(&g, &opts());
        let text = serde_json::to_string(&dep).unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        let pod = dep.spec.unwrap().template.spec.unwrap();
        let env = pod.containers[0].env.clone().unwrap();
        let token = env.iter().find(|e| e.name == "TOKEN").unwrap();
        let sel = token.value_from.as_ref().unwrap().secret_key_ref.as_ref();
        assert_eq!(
            sel.unwrap().name,
            generation_name("0123456789ab", "digits", "blue", 2)
        );
        assert!(
            env.iter()
                .any(|e| e.name == "MODE" && e.value.as_deref() == Some("fast"))
        );
        let secret = generation_secret(&g, &opts()).unwrap();
        assert_eq!(
            secret.data.unwrap()["TOKEN"].0,
            b"s3cret".to_vec(),
            "the value itself"
        );
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    }

    #[test]
    fn instances_are_probed_with_azures_settings_and_counted() {
        let rec = record(None);
        let limits = Limits::default();
        let dep = generation_deployment(&spec(&rec, &limits), &opts());
        let s = dep.spec.unwrap();
        assert_eq!(s.replicas, Some(3));
        let c = &s.template.spec.unwrap().containers[0];
        let ready = c.readiness_probe.as_ref().unwrap();
        assert_eq!(ready.failure_threshold, Some(30));
        assert_eq!(ready.initial_delay_seconds, Some(10));
        assert_eq!(ready.timeout_seconds, Some(2));
        assert_eq!(
            c.liveness_probe.as_ref().unwrap().initial_delay_seconds,
            Some(5)
        );
        // The generation label keeps two generations' pods apart during an update.
        let sel = s.selector.match_labels.unwrap();
        assert_eq!(sel[LABEL_GENERATION], "2");
        assert_eq!(sel[LABEL_DEPLOYMENT], "blue");
    }

    #[test]
    fn autoscaled_deployments_start_at_min_and_name_the_api_the_server_has() {
        let a = Autoscale {
            min_instances: 1,
            max_instances: 4,
            target_utilization_percentage: 70,
            polling_interval: 1,
        };
        let rec = record(Some(a.clone()));
        let limits = Limits::default();
        let g = spec(&rec, &limits);
        assert_eq!(
            generation_deployment(&g, &opts()).spec.unwrap().replicas,
            Some(1)
        );
        let on_1_20 = autoscaling_api(&["v1", "v2beta1", "v2beta2"]).unwrap();
        let hpa = generation_autoscaler(&g, &a, on_1_20, &opts());
        assert_eq!(hpa["apiVersion"], "autoscaling/v2beta2");
        assert_eq!(hpa["spec"]["maxReplicas"], 4);
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            70
        );
        assert_eq!(autoscaling_api(&["v1", "v2"]), Some("autoscaling/v2"));
        assert_eq!(autoscaling_api(&["v1"]), None);
    }

    #[test]
    fn an_exposed_router_service_gives_the_address_users_call() {
        let mut svc = router_service("w", "digits", EndpointService::NodePort, &opts());
        assert_eq!(
            svc.spec.as_ref().unwrap().type_.as_deref(),
            Some("NodePort")
        );
        let nodes = vec![
            ("InternalIP".to_string(), "10.0.0.5".to_string()),
            ("Hostname".to_string(), "n1".to_string()),
        ];
        assert_eq!(
            external_base(&svc, &nodes),
            None,
            "no node port assigned yet"
        );
        svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(31000);
        assert_eq!(
            external_base(&svc, &nodes).as_deref(),
            Some("http://10.0.0.5:31000")
        );
        let cluster_ip = router_service("w", "digits", EndpointService::ClusterIP, &opts());
        assert_eq!(external_base(&cluster_ip, &nodes), None);
        let mut lb = router_service("w", "digits", EndpointService::LoadBalancer, &opts());
        assert_eq!(external_base(&lb, &nodes), None, "pending");
        lb.status = Some(k8s_openapi::api::core::v1::ServiceStatus {
            load_balancer: Some(k8s_openapi::api::core::v1::LoadBalancerStatus {
                ingress: Some(vec![k8s_openapi::api::core::v1::LoadBalancerIngress {
                    ip: Some("203.0.113.7".into()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        });
        assert_eq!(
            external_base(&lb, &nodes).as_deref(),
            Some("http://203.0.113.7:80")
        );
    }

    #[test]
    fn the_router_reads_a_writable_copy_seeded_from_its_config_map() {
        let d = router_deployment("0123456789ab", "digits", "tug/infsrv:1", &opts());
        let pod = d.spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        let args = c.args.clone().unwrap();
        assert!(args.windows(2).any(|w| w == ["--seed", ROUTER_SEED]));
        assert_eq!(
            c.security_context
                .as_ref()
                .unwrap()
                .read_only_root_filesystem,
            Some(true)
        );
        let seed = pod.volumes.unwrap();
        assert_eq!(
            seed[1].config_map.as_ref().unwrap().name,
            router_name("0123456789ab", "digits")
        );
        let cmd = apply_config_command(
            &["/tug-infsrv".to_string()],
            &RouterConfig {
                endpoint: "digits".into(),
                key_sha256: vec![],
                deployments: vec![],
                traffic: Default::default(),
                mirror_traffic: Default::default(),
            },
        );
        assert_eq!(cmd[..3], ["/tug-infsrv", "router", "apply-config"]);
        assert!(cmd.last().unwrap().starts_with('{'));
    }
}
