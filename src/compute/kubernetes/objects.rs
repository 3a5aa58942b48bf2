//! The Kubernetes objects a run becomes. Pure: a [`RunSpec`] in, typed objects out, so
//! every field tug sets is unit-tested and checked against the API schemas.
//!
//! A run is one `batch/v1` Job (no retries) whose pod has two containers sharing an
//! `emptyDir` at `/tug` (code, inputs, outputs, home) and a small control folder:
//!
//! - `collector`: tug streams the run's files into `/tug` through an exec'd `tar -x` in it
//!   (so the code snapshot needs neither a registry nor a rebuilt image, and has no size
//!   limit such as a ConfigMap's 1 MiB), then marks them delivered. It stays beside `main`
//!   so that, after `main` has exited (or been stopped), tug can exec `tar -c` in it to
//!   copy outputs and logs back. With the pod's process namespace shared, it is also how
//!   tug stops `main` for cancel and timeout, TERM then KILL, as `docker stop` does, while
//!   the pod (and its outputs) stay. Where pods cannot reach this machine, it also runs
//!   the MLflow tracking relay (`tunnel.rs`).
//! - `main`: waits for the delivered mark (its control folder is read-only), then execs
//!   the user's command with the run's limits.
//!
//! Both start together (an init container for the delivery would cost one more container
//! start and one more kubelet status cycle before the run starts). Both run the run's own
//! image (it has `/bin/sh` and `tar`), as the run's user.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, HostPathVolumeSource,
    LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements,
    Secret, SecretKeySelector, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::compute::{Limits, RunSpec, labels};
use crate::run::model::paths;

pub const MAIN: &str = "main";
pub const COLLECTOR: &str = "collector";
/// Annotation with the full run id (label values are limited to 63 characters).
pub const RUN_ANNOTATION: &str = "tug.run-id";
const CONTROL: &str = "/tug-control";
const DELIVERED: &str = "/tug-control/delivered";
const COLLECTED: &str = "/tug-control/collected";
/// Seconds between TERM and KILL when a run is stopped.
pub const STOP_GRACE_SECONDS: u32 = 10;

/// What the compute target's config adds to a run's objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOptions {
    pub namespace: String,
    /// `IfNotPresent` (content-hash tags never change) unless the delivery says otherwise.
    pub pull_policy: String,
    pub image_pull_secret: Option<String>,
    /// The nodes are this machine (images: local), so host folders can be mounted.
    pub host_paths: bool,
    /// Pods cannot reach this machine: a run's MLflow client goes through a relay in
    /// `collector` (`tunnel.rs`) instead of the tracking URI it was given.
    pub tracking_tunnel: bool,
}

/// The relay `collector` runs for [`JobOptions::tracking_tunnel`], passed in its
/// environment as [`RELAY_SOURCE`] (standard-library Python, in the run's own image).
pub const RELAY_PY: &str = include_str!("relay.py");
pub const RELAY_SOURCE: &str = "TUG_RELAY_PY";
/// The relay's port for the run's MLflow client, on the pod's loopback.
pub const RELAY_JOB_PORT: u16 = 47617;
/// The relay's port for tug's server (through port-forward), on the pod's loopback.
pub const RELAY_HOST_PORT: u16 = 47618;
const TRACKING_URI: &str = "MLFLOW_TRACKING_URI";
const TRACKING_TOKEN: &str = "MLFLOW_TRACKING_TOKEN";

/// Whether a run's pod runs the tracking relay.
pub fn has_relay(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers
            .iter()
            .any(|c| c.name == COLLECTOR && c.env.iter().flatten().any(|e| e.name == RELAY_SOURCE))
    })
}

/// A DNS-1123 name of at most 63 characters, unique per workspace and run.
pub fn job_name(workspace_id: &str, run_id: &str) -> String {
    let mut slug: String = run_id
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    slug.truncate(40);
    let slug = slug.trim_matches('-');
    let hash = &crate::snapshot::sha256_hex(format!("{workspace_id}/{run_id}").as_bytes())[..10];
    if slug.is_empty() {
        format!("tug-run-{hash}")
    } else {
        format!("tug-{slug}-{hash}")
    }
}

/// `value` if it is a valid label value, else a hash of it (the annotation keeps the value).
pub fn label_value(value: &str) -> String {
    let ok = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        value.to_string()
    } else {
        format!("h-{}", &crate::snapshot::sha256_hex(value.as_bytes())[..40])
    }
}

/// The label selector of one run's objects.
pub fn run_selector(workspace_id: &str, run_id: &str) -> String {
    format!(
        "{}={},{}={}",
        labels::WORKSPACE,
        label_value(workspace_id),
        labels::RUN,
        label_value(run_id)
    )
}

/// The label selector of every run object of a workspace.
pub fn workspace_selector(workspace_id: &str) -> String {
    format!(
        "{}={},{}=job",
        labels::WORKSPACE,
        label_value(workspace_id),
        labels::ROLE
    )
}

fn run_labels(spec: &RunSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::WORKSPACE.into(), label_value(&spec.workspace_id)),
        (labels::RUN.into(), label_value(&spec.run_id)),
        (labels::ROLE.into(), "job".into()),
    ])
}

fn meta(spec: &RunSpec, opts: &JobOptions) -> ObjectMeta {
    ObjectMeta {
        name: Some(job_name(&spec.workspace_id, &spec.run_id)),
        namespace: Some(opts.namespace.clone()),
        labels: Some(run_labels(spec)),
        annotations: Some(BTreeMap::from([(
            RUN_ANNOTATION.into(),
            spec.run_id.clone(),
        )])),
        ..Default::default()
    }
}

/// The Secret holding the run's decrypted secret values, or `None` when it has none:
/// the Job then refers to them by key, so reading the Job never shows a value.
pub fn run_secret(spec: &RunSpec, opts: &JobOptions) -> Option<Secret> {
    if spec.secret_env.is_empty() {
        return None;
    }
    let data = spec
        .secret_env
        .iter()
        .filter_map(|k| Some((k.clone(), ByteString(spec.env.get(k)?.clone().into_bytes()))))
        .collect();
    Some(Secret {
        metadata: meta(spec, opts),
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Default::default()
    })
}

fn env(spec: &RunSpec, secret_name: &str) -> Vec<EnvVar> {
    spec.env
        .iter()
        .map(|(k, v)| {
            if spec.secret_env.contains(k) {
                EnvVar {
                    name: k.clone(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secret_name.to_string(),
                            key: k.clone(),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            } else {
                EnvVar {
                    name: k.clone(),
                    value: Some(literal(v)),
                    ..Default::default()
                }
            }
        })
        .collect()
}

/// A Kubernetes CPU quantity from nano-CPUs, in millicores.
pub fn cpu_quantity(nanos: i64) -> Quantity {
    let milli = (nanos + 999_999) / 1_000_000;
    if milli % 1000 == 0 {
        Quantity((milli / 1000).to_string())
    } else {
        Quantity(format!("{milli}m"))
    }
}

/// A Kubernetes memory quantity from bytes, in the largest binary unit that divides it.
pub fn memory_quantity(bytes: i64) -> Quantity {
    for (unit, size) in [("Gi", 1i64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= size && bytes % size == 0 {
            return Quantity(format!("{}{unit}", bytes / size));
        }
    }
    Quantity(bytes.to_string())
}

/// Requests and limits: requests default to the limits (a Guaranteed pod), as Azure's
/// instance types do when they name no requests.
pub fn resources(limits: &Limits) -> Option<ResourceRequirements> {
    let mut lim = BTreeMap::new();
    let mut req = BTreeMap::new();
    if let Some(c) = limits.nano_cpus {
        lim.insert("cpu".to_string(), cpu_quantity(c));
    }
    if let Some(m) = limits.memory_bytes {
        lim.insert("memory".to_string(), memory_quantity(m));
    }
    if let Some(g) = limits.gpus {
        lim.insert("nvidia.com/gpu".to_string(), Quantity(g.to_string()));
    }
    if let Some(c) = limits.cpu_request_nanos.or(limits.nano_cpus) {
        req.insert("cpu".to_string(), cpu_quantity(c));
    }
    if let Some(m) = limits.memory_request_bytes.or(limits.memory_bytes) {
        req.insert("memory".to_string(), memory_quantity(m));
    }
    if let Some(g) = limits.gpus {
        req.insert("nvidia.com/gpu".to_string(), Quantity(g.to_string()));
    }
    (!lim.is_empty() || !req.is_empty()).then(|| ResourceRequirements {
        limits: (!lim.is_empty()).then_some(lim),
        requests: (!req.is_empty()).then_some(req),
        ..Default::default()
    })
}

/// `(cpu, memory)` requests and limits of one of tug's own containers.
pub fn fixed_resources(requests: (&str, &str), limits: (&str, &str)) -> ResourceRequirements {
    let pair = |(cpu, memory): (&str, &str)| {
        Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ]))
    };
    ResourceRequirements {
        requests: pair(requests),
        limits: pair(limits),
        ..Default::default()
    }
}

/// The instance type's tolerations, as the pod spec writes them.
pub fn tolerations(limits: &Limits) -> Vec<Toleration> {
    limits
        .tolerations
        .iter()
        .map(|t| Toleration {
            key: t.key.clone(),
            operator: t.operator.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            toleration_seconds: t.toleration_seconds,
        })
        .collect()
}

/// `uid:gid` as numbers (tug's own users are numeric; a named user gives none).
pub fn user_ids(user: &Option<String>) -> Option<(i64, i64)> {
    let (u, g) = user.as_deref()?.split_once(':')?;
    Some((u.parse().ok()?, g.parse().ok()?))
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn sh(script: &str) -> Option<Vec<String>> {
    Some(vec!["/bin/sh".into(), "-c".into(), script.into()])
}

/// The Job of a run. `host_paths` false and `spec.mounts` non-empty is refused earlier
/// ([`check`]); here such mounts are left out.
pub fn run_job(spec: &RunSpec, opts: &JobOptions) -> Job {
    let name = job_name(&spec.workspace_id, &spec.run_id);
    let ids = user_ids(&spec.user);
    let container_security = SecurityContext {
        allow_privilege_escalation: Some(false),
        // tug's own images run as a fixed non-root user that needs no capabilities; an
        // image's own USER (maybe root) keeps the runtime's default set.
        capabilities: ids.map(|_| Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut volumes = vec![
        Volume {
            name: "tug".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        Volume {
            name: "tug-control".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("1Mi".into())),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    let mut main_mounts = vec![mount("tug", paths::ROOT, false)];
    if let Some(shm) = spec.limits.shm_bytes {
        volumes.push(Volume {
            name: "shm".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(memory_quantity(shm)),
            }),
            ..Default::default()
        });
        main_mounts.push(mount("shm", "/dev/shm", false));
    }
    if opts.host_paths {
        for (i, m) in spec.mounts.iter().enumerate() {
            let vol = format!("input-{i}");
            volumes.push(Volume {
                name: vol.clone(),
                host_path: Some(HostPathVolumeSource {
                    path: m.host.clone(),
                    type_: None,
                }),
                ..Default::default()
            });
            main_mounts.push(mount(&vol, &m.container, true));
        }
    }
    let control = |ro| {
        vec![
            mount("tug", paths::ROOT, ro),
            mount("tug-control", CONTROL, false),
        ]
    };
    let helper_resources = fixed_resources(("10m", "16Mi"), ("1", "128Mi"));
    let helper = |name: &str, script: String, ro: bool| Container {
        name: name.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(opts.pull_policy.clone()),
        command: sh(&script),
        volume_mounts: Some(control(ro)),
        resources: Some(helper_resources.clone()),
        security_context: Some(container_security.clone()),
        ..Default::default()
    };
    // Only the tracking tug set up (its run token travels as a secret beside it), never a
    // URI of the user's own.
    let relay = opts.tracking_tunnel
        && spec.env.contains_key(TRACKING_URI)
        && !spec.secret_env.contains(TRACKING_URI)
        && spec.secret_env.contains(TRACKING_TOKEN);
    // Without python3 in the image the relay cannot start; nor can an MLflow client.
    let start_relay = if relay {
        format!(
            "if command -v python3 >/dev/null 2>&1; then python3 -I -c \"${RELAY_SOURCE}\" & fi; "
        )
    } else {
        String::new()
    };
    let mut collector = helper(
        COLLECTOR,
        format!(
            "{start_relay}trap 'exit 0' TERM; while [ ! -e {COLLECTED} ]; do sleep 1 & wait $!; done"
        ),
        false,
    );
    if relay {
        collector.env = Some(vec![EnvVar {
            name: RELAY_SOURCE.into(),
            value: Some(literal(RELAY_PY)),
            ..Default::default()
        }]);
    }
    let mut main_env = env(spec, &name);
    if relay {
        for e in main_env.iter_mut().filter(|e| e.name == TRACKING_URI) {
            e.value = Some(format!("http://127.0.0.1:{RELAY_JOB_PORT}"));
        }
    }
    main_mounts.push(mount("tug-control", CONTROL, true));
    // The command and working folder travel as $0 and $1, never spliced into the script.
    // The working folder is entered only once delivered: given as the container's
    // `workingDir`, the runtime would create it, as root, before the files arrive.
    let main_command = vec![
        "/bin/sh".into(),
        "-c".into(),
        literal(&format!(
            "while [ ! -e {DELIVERED} ]; do sleep 0.1; done; cd \"$1\" && exec /bin/sh -c \"$0\""
        )),
        literal(&spec.command),
        literal(&spec.working_dir),
    ];
    let main = Container {
        name: MAIN.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(opts.pull_policy.clone()),
        command: Some(main_command),
        working_dir: Some(paths::ROOT.to_string()),
        env: Some(main_env),
        resources: resources(&spec.limits),
        volume_mounts: Some(main_mounts),
        security_context: Some(container_security.clone()),
        ..Default::default()
    };
    let tolerations = tolerations(&spec.limits);
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        share_process_namespace: Some(true),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(i64::from(STOP_GRACE_SECONDS)),
        security_context: Some(PodSecurityContext {
            run_as_user: ids.map(|(u, _)| u),
            run_as_group: ids.map(|(_, g)| g),
            run_as_non_root: ids.map(|(u, _)| u != 0),
            ..Default::default()
        }),
        containers: vec![main, collector],
        volumes: Some(volumes),
        node_selector: (!spec.limits.node_selector.is_empty())
            .then(|| spec.limits.node_selector.clone()),
        tolerations: (!tolerations.is_empty()).then_some(tolerations),
        image_pull_secrets: opts
            .image_pull_secret
            .as_ref()
            .map(|s| vec![LocalObjectReference { name: s.clone() }]),
        ..Default::default()
    };
    let meta = meta(spec, opts);
    Job {
        metadata: meta.clone(),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: meta.labels.clone(),
                    annotations: meta.annotations.clone(),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What cannot run on this target, said before anything is created.
pub fn check(spec: &RunSpec, opts: &JobOptions) -> Result<(), String> {
    if !opts.host_paths && !spec.mounts.is_empty() {
        return Err(format!(
            "input mounted from {} (`mode: ro_mount`) cannot reach this cluster's nodes; use `mode: download`, or `images: local` when the nodes are this machine",
            spec.mounts[0].host
        ));
    }
    Ok(())
}

/// Where the run's files wait, spooled, before they are unpacked.
const SPOOL: &str = "/tug/.tug-delivery.tar";

/// Exec'd in `collector` with the run's files (a tar) on stdin: spools them. The exec's
/// stream may close before it reports (a 1.20 server closes an exec with stdin when stdin
/// ends), so this step only copies; [`unpack_command`] checks the size and unpacks.
pub fn receive_command() -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("if [ -e {DELIVERED} ]; then cat >/dev/null; exit 0; fi; cat >{SPOOL}"),
    ]
}

/// Exit code of [`unpack_command`] when the spool is not the `bytes` sent (cut short).
pub const SPOOL_SHORT: i32 = 3;

/// Exec'd in `collector` (no stdin, so its status always arrives): unpacks the spool if it
/// holds all `bytes`, and lets `main` go on. Once delivered, never again: a retried start
/// must not overwrite what the run wrote.
pub fn unpack_command(bytes: usize) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "[ -e {DELIVERED} ] && exit 0; [ \"$(wc -c <{SPOOL})\" -eq {bytes} ] || exit {SPOOL_SHORT}; \
             tar -x -o -f {SPOOL} -C {root} && rm -f {SPOOL} && touch {DELIVERED}",
            root = paths::ROOT
        ),
    ]
}

/// The kubelet expands `$(NAME)` and turns `$$` into `$` in a container's command and in
/// env values; Docker does neither. Doubling every `$` keeps the text as the user wrote it.
pub fn literal(text: &str) -> String {
    text.replace('$', "$$")
}

/// Exec'd in `collector`: a tar of `folder` (its last component at the top, as Docker's
/// archive API gives), or nothing when the folder does not exist.
pub fn collect_command(folder: &str) -> Vec<String> {
    let folder = folder.trim_end_matches('/');
    let (parent, base) = folder.rsplit_once('/').unwrap_or(("", folder));
    let parent = if parent.is_empty() { "/" } else { parent };
    vec![
        "/bin/sh".into(),
        "-c".into(),
        "cd \"$1\" 2>/dev/null && [ -e \"$2\" ] || exit 0; exec tar -c -f - -- \"$2\"".into(),
        "collect".into(),
        parent.into(),
        base.into(),
    ]
}

/// Exec'd in `collector`: lets it exit once the outputs have been copied.
pub fn release_command() -> Vec<String> {
    vec!["touch".into(), COLLECTED.into()]
}

/// Exec'd in `collector` to stop `main`: TERM to every process outside the collector's
/// own mount namespace (that is, `main`'s; PID 1 is the pod's pause process), then KILL
/// after the grace period, like `docker stop`.
pub fn stop_command() -> Vec<String> {
    let script = format!(
        r#"me=$(readlink /proc/self/ns/mnt)
others() {{ for d in /proc/[0-9]*; do p=${{d#/proc/}}; [ "$p" = 1 ] && continue; n=$(readlink "$d/ns/mnt" 2>/dev/null) || continue; [ "$n" = "$me" ] || echo "$p"; done; }}
pids=$(others); [ -n "$pids" ] && kill -TERM $pids 2>/dev/null
i=0; while [ $i -lt {ticks} ] && [ -n "$(others)" ]; do sleep 0.2; i=$((i+1)); done
pids=$(others); [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
exit 0"#,
        ticks = STOP_GRACE_SECONDS * 5
    );
    vec!["/bin/sh".into(), "-c".into(), script]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::HostMount;
    use k8s_openapi::api::core::v1::Pod;

    fn spec() -> RunSpec {
        RunSpec {
            workspace_id: "ab12cd34ef56".into(),
            run_id: "Tidy_Kettle_1".into(),
            image: "tug/env:0123456789abcdef".into(),
            command: "python train.py".into(),
            working_dir: "/tug/code".into(),
            env: [
                ("A".to_string(), "1".to_string()),
                ("DB".to_string(), "hunter2".to_string()),
            ]
            .into(),
            secret_env: ["DB".to_string()].into(),
            user: Some("1000:1000".into()),
            files: vec![],
            owner: (1000, 1000),
            dir_mode: 0o755,
            mounts: vec![HostMount {
                host: "/data".into(),
                container: "/tug/inputs/d".into(),
            }],
            limits: Limits {
                nano_cpus: Some(1_500_000_000),
                memory_bytes: Some(2 << 30),
                cpu_request_nanos: Some(100_000_000),
                shm_bytes: Some(256 << 20),
                gpus: Some(1),
                node_selector: [("pool".to_string(), "gpu".to_string())].into(),
                tolerations: vec![crate::compute::config::Toleration {
                    key: Some("gpu".into()),
                    operator: Some("Exists".into()),
                    effect: Some("NoSchedule".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
            collect: vec![],
        }
    }

    fn opts() -> JobOptions {
        JobOptions {
            namespace: "ml".into(),
            pull_policy: "IfNotPresent".into(),
            image_pull_secret: None,
            host_paths: true,
            tracking_tunnel: false,
        }
    }

    #[test]
    fn a_tunnelled_run_talks_to_its_pods_relay() {
        let env_of = |c: &Container, name: &str| {
            c.env
                .iter()
                .flatten()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
        };
        let mut s = spec();
        // A URI of the user's own (no run token beside it) is left alone.
        s.env
            .insert(TRACKING_URI.into(), "http://mlflow.example:5000".into());
        assert!(!has_relay(&Pod {
            spec: run_job(
                &s,
                &JobOptions {
                    tracking_tunnel: true,
                    ..opts()
                }
            )
            .spec
            .unwrap()
            .template
            .spec,
            ..Default::default()
        }));
        s.env
            .insert(TRACKING_URI.into(), "http://172.17.0.1:41000".into());
        s.env.insert(TRACKING_TOKEN.into(), "tug-run.x".into());
        s.secret_env.insert(TRACKING_TOKEN.into());
        let tunnel = JobOptions {
            tracking_tunnel: true,
            ..opts()
        };
        let pod = |s: &RunSpec, o: &JobOptions| {
            let job = run_job(s, o);
            Pod {
                spec: job.spec.unwrap().template.spec,
                ..Default::default()
            }
        };
        let p = pod(&s, &tunnel);
        assert!(has_relay(&p));
        let ps = p.spec.as_ref().unwrap();
        let (main, collector) = (&ps.containers[0], &ps.containers[1]);
        assert_eq!(
            env_of(main, TRACKING_URI).as_deref(),
            Some("http://127.0.0.1:47617")
        );
        let relay = env_of(collector, RELAY_SOURCE).unwrap();
        assert_eq!(
            relay,
            literal(RELAY_PY),
            "the kubelet must not expand `$(...)`"
        );
        assert!(relay.contains("\"127.0.0.1\", HOST_PORT") && relay.contains("47618"));
        let script = &collector.command.as_ref().unwrap()[2];
        assert!(
            script.starts_with("if command -v python3") && script.contains("\"$TUG_RELAY_PY\" &"),
            "{script}"
        );
        assert!(
            env_of(main, RELAY_SOURCE).is_none(),
            "the run's own container has no relay"
        );

        // Direct, or a run with no tracking URI: no relay, the URI as given.
        let p = pod(&s, &opts());
        assert!(!has_relay(&p));
        let main = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            env_of(main, TRACKING_URI).as_deref(),
            Some("http://172.17.0.1:41000")
        );
        assert!(!has_relay(&pod(&spec(), &tunnel)));
    }

    #[test]
    fn names_and_labels_are_valid_and_stable() {
        let n = job_name("ab12cd34ef56", "Tidy_Kettle_1");
        assert!(n.starts_with("tug-tidy-kettle-1-") && n.len() <= 63, "{n}");
        assert_eq!(n, job_name("ab12cd34ef56", "Tidy_Kettle_1"));
        assert_ne!(n, job_name("ab12cd34ef56", "tidy-kettle-1"));
        let long = "x".repeat(255);
        assert!(job_name("w", &long).len() <= 63);
        assert_eq!(label_value("run_1"), "run_1");
        let hashed = label_value(&long);
        assert!(hashed.len() <= 63 && hashed.starts_with("h-"));
        assert_eq!(label_value("_x"), label_value("_x"));
        assert!(label_value("_x").starts_with("h-"));
    }

    #[test]
    fn the_job_runs_once_as_the_user_with_its_limits_and_placement() {
        let job = run_job(&spec(), &opts());
        let js = job.spec.unwrap();
        assert_eq!(js.backoff_limit, Some(0));
        let pod = js.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.share_process_namespace, Some(true));
        let sc = pod.security_context.unwrap();
        assert_eq!(
            (sc.run_as_user, sc.run_as_non_root),
            (Some(1000), Some(true))
        );
        assert_eq!(pod.node_selector.unwrap()["pool"], "gpu");
        assert_eq!(pod.tolerations.unwrap()[0].key.as_deref(), Some("gpu"));
        let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, [MAIN, COLLECTOR]);
        assert!(pod.init_containers.is_none());
        let main = &pod.containers[0];
        let command = main.command.as_ref().unwrap();
        assert!(command[2].contains("/tug-control/delivered"), "{command:?}");
        assert!(
            command[2].contains("cd \"$$1\""),
            "shell `$` kept from the kubelet: {command:?}"
        );
        assert_eq!(
            command[3], "python train.py",
            "the command is an argument, not spliced"
        );
        assert_eq!(command[4], "/tug/code");
        assert_eq!(main.working_dir.as_deref(), Some("/tug"));
        assert_eq!(main.image_pull_policy.as_deref(), Some("IfNotPresent"));
        let res = main.resources.clone().unwrap();
        let lim = res.limits.unwrap();
        assert_eq!(lim["cpu"].0, "1500m");
        assert_eq!(lim["memory"].0, "2Gi");
        assert_eq!(lim["nvidia.com/gpu"].0, "1");
        let req = res.requests.unwrap();
        assert_eq!(req["cpu"].0, "100m");
        assert_eq!(req["memory"].0, "2Gi", "requests default to the limits");
        let mounts: Vec<_> = main
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.mount_path.as_str(), m.read_only))
            .collect();
        assert!(mounts.contains(&("/tug", None)));
        assert!(mounts.contains(&("/dev/shm", None)));
        assert!(mounts.contains(&("/tug/inputs/d", Some(true))));
        assert!(
            mounts.contains(&("/tug-control", Some(true))),
            "main cannot mark its own files delivered"
        );
        let security = main.security_context.as_ref().unwrap();
        assert_eq!(security.allow_privilege_escalation, Some(false));
    }

    #[test]
    fn secret_values_live_in_a_secret_never_in_the_job() {
        let s = spec();
        let job = run_job(&s, &opts());
        let text = serde_json::to_string(&job).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        let env = job.spec.unwrap().template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        let db = env.iter().find(|e| e.name == "DB").unwrap();
        let key = db
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(key.name, job_name(&s.workspace_id, &s.run_id));
        assert_eq!(
            env.iter().find(|e| e.name == "A").unwrap().value.as_deref(),
            Some("1")
        );
        let secret = run_secret(&s, &opts()).unwrap();
        assert_eq!(secret.data.unwrap()["DB"].0, b"hunter2");
        let plain = RunSpec {
            secret_env: Default::default(),
            ..s
        };
        assert!(run_secret(&plain, &opts()).is_none());
    }

    #[test]
    fn host_mounts_need_nodes_on_this_machine() {
        let remote = JobOptions {
            host_paths: false,
            ..opts()
        };
        let err = check(&spec(), &remote).unwrap_err();
        assert!(err.contains("mode: download"), "{err}");
        assert!(check(&spec(), &opts()).is_ok());
    }

    #[test]
    fn dollars_reach_the_shell_as_written() {
        let s = RunSpec {
            command: "echo $HOME $(TUG_RUN_ID) $$".into(),
            env: [("P".to_string(), "a$(B)c".to_string())].into(),
            secret_env: Default::default(),
            ..spec()
        };
        let job = run_job(&s, &opts());
        let main = &job.spec.unwrap().template.spec.unwrap().containers[0];
        assert_eq!(
            main.command.as_ref().unwrap()[3],
            "echo $$HOME $$(TUG_RUN_ID) $$$$"
        );
        assert_eq!(
            main.env.as_ref().unwrap()[0].value.as_deref(),
            Some("a$$(B)c")
        );
    }

    #[test]
    fn delivery_is_spooled_then_checked_by_size_then_unpacked_once() {
        let receive = receive_command();
        assert!(
            receive[2].contains("cat >/tug/.tug-delivery.tar"),
            "{receive:?}"
        );
        let unpack = unpack_command(10240);
        let script = &unpack[2];
        assert!(script.contains("-eq 10240 ] || exit 3"), "{script}");
        assert!(
            script.starts_with("[ -e /tug-control/delivered ] && exit 0"),
            "never twice: {script}"
        );
        assert!(script.ends_with("touch /tug-control/delivered"), "{script}");
    }

    #[test]
    fn quantities_are_what_kubernetes_writes() {
        assert_eq!(cpu_quantity(2_000_000_000).0, "2");
        assert_eq!(cpu_quantity(500_000_000).0, "500m");
        assert_eq!(memory_quantity(512 << 20).0, "512Mi");
        assert_eq!(memory_quantity(1000).0, "1000");
    }

    #[test]
    fn collect_command_tars_the_folder_by_its_last_name() {
        let c = collect_command("/tug/code/outputs/");
        assert_eq!(&c[4..], ["/tug/code", "outputs"]);
        let d = collect_command("/top");
        assert_eq!(&d[4..], ["/", "top"]);
    }
}
