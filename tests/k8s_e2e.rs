//! The Kubernetes compute target end to end, against a real cluster: the one in
//! `TUG_E2E_KUBECONFIG` (in CI the local 1.20 cluster `tests/k8s/cluster.sh` builds and
//! starts; for users their kind or minikube), namespace `TUG_E2E_NAMESPACE` (`default`).
//! The cluster's nodes must see this machine's Docker images (`images: local`).
//!
//! Without a cluster every test prints `skipped: no cluster` and passes, unless
//! `TUG_E2E_REQUIRED=1` (set by `make test`), where that is a failure: CI never passes
//! by skipping.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, cluster};
use common::{MINIMAL, SKLEARN};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(300);

fn k8s_job(command: &str, extra: &str) -> String {
    format!(
        "experiment_name: k8s-e2e\ncode: src\ncommand: {command}\nenvironment:\n  image: {MINIMAL}\ncompute: azureml:k8s\n{extra}"
    )
}

#[test]
fn the_digits_job_trains_on_the_cluster_with_live_metrics_and_outputs() {
    let Some(c) = cluster() else { return };
    common::require_image(SKLEARN);
    let ws = c.workspace();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits");
    for f in ["train.yml", "conda.yml", "src/train.py"] {
        ws.write(f, &std::fs::read_to_string(examples.join(f)).unwrap());
    }
    let out = ws.tug(&[
        "job",
        "create",
        "-f",
        "train.yml",
        "--set",
        "compute=azureml:k8s",
        "--stream",
    ]);
    let streamed =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{streamed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(streamed.contains("[metric] accuracy"), "live: {streamed}");
    let runs = ws.json(&["job", "list"]);
    let id = runs[0]["id"]
        .as_str()
        .or(runs[0]["name"].as_str())
        .unwrap()
        .to_string();
    let v = ws.show(&id);
    assert_eq!(v["status"], "Completed", "{v:#}");
    assert!(
        v["container"].as_str().unwrap_or_default().contains('/'),
        "ran as a cluster object: {v:#}"
    );
    let accuracy = v["metrics"]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.9, "{accuracy}");
    assert!(ws.run_dir(&id).join("outputs/model.pkl").is_file());
    c.assert_nothing_left(&ws);
}

#[test]
fn a_failing_job_ends_failed_with_its_exit_code_and_last_lines() {
    let Some(c) = cluster() else { return };
    let ws = c.workspace();
    ws.write(
        "src/fail.py",
        "import sys\nprint('working', flush=True)\nprint('giving up: bad input', file=sys.stderr, flush=True)\nsys.exit(3)\n",
    );
    let id = ws.submit("job.yml", &k8s_job("python3 fail.py", ""));
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Failed", "{v:#}");
    assert_eq!(v["exit_code"], 3, "{v:#}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("giving up: bad input"), "{error}");
    c.assert_nothing_left(&ws);
}

const SLOW: &str = r#"
import os, time
os.makedirs("outputs", exist_ok=True)
open("outputs/partial.txt", "w").write("written before the stop")
print("started", flush=True)
time.sleep(300)
"#;

#[test]
fn cancel_stops_the_pod_and_keeps_what_it_wrote() {
    let Some(c) = cluster() else { return };
    let ws = c.workspace();
    ws.write("src/slow.py", SLOW);
    let id = ws.submit("job.yml", &k8s_job("python3 slow.py", ""));
    ws.wait_for(&id, LIMIT, |v| {
        v["status"] == "Running"
            && std::fs::read_to_string(
                ws.run_dir(v["id"].as_str().unwrap())
                    .join("user_logs/std_log.txt"),
            )
            .is_ok_and(|l| l.contains("started"))
    });
    let start = Instant::now();
    ws.ok(&["job", "cancel", &id]);
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Canceled", "{v:#}");
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "stopped within the grace period: {:?}",
        start.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(ws.run_dir(&id).join("outputs/partial.txt")).unwrap(),
        "written before the stop"
    );
    c.assert_nothing_left(&ws);
}

#[test]
fn a_timeout_stops_the_run_with_the_reason_and_keeps_outputs() {
    let Some(c) = cluster() else { return };
    let ws = c.workspace();
    ws.write("src/slow.py", SLOW);
    let id = ws.submit(
        "job.yml",
        &k8s_job("python3 slow.py", "limits:\n  timeout: 5\n"),
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Failed", "{v:#}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("limits.timeout of 5 s"), "{error}");
    assert!(ws.run_dir(&id).join("outputs/partial.txt").is_file());
    c.assert_nothing_left(&ws);
}

#[test]
fn a_secret_reaches_the_pod_masked_and_never_sits_in_the_job() {
    let Some(c) = cluster() else { return };
    const VALUE: &str = "k8s-Secret-Value-9137";
    let ws = c.workspace();
    ws.set_secret("TOKEN", VALUE);
    ws.write(
        "src/show.py",
        "import os, time\nv = os.environ['TOKEN']\nprint('token=' + v, 'len=%d' % len(v), flush=True)\ntime.sleep(4)\n",
    );
    let id = ws.submit(
        "job.yml",
        &k8s_job(
            "python3 show.py",
            "environment_variables:\n  TOKEN: ${{secrets.TOKEN}}\n",
        ),
    );
    // While it runs, the Job object holds a reference to a Secret, not the value.
    let v = ws.wait_for(&id, LIMIT, |v| {
        matches!(
            v["status"].as_str(),
            Some("Running" | "Completed" | "Failed" | "Canceled")
        )
    });
    assert_eq!(v["status"], "Running", "{v:#}");
    let ws_id = ws.workspace_id().unwrap();
    let jobs: Vec<Value> = c.with_client(async |client| {
        let api: Api<Job> = Api::namespaced(client, &c.namespace);
        api.list(&ListParams::default().labels(&format!("tug.workspace={ws_id}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|j| serde_json::to_value(j).unwrap())
            .collect()
    });
    assert_eq!(jobs.len(), 1);
    let text = jobs[0].to_string();
    assert!(
        text.contains("secretKeyRef") && !text.contains(VALUE),
        "{text}"
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}");
    let log = std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt")).unwrap();
    assert!(log.contains("token=***"), "{log}");
    assert!(log.contains(&format!("len={}", VALUE.len())), "{log}");
    assert!(!log.contains(VALUE));
    c.assert_nothing_left(&ws);
}

#[test]
fn a_killed_server_loses_no_run_on_the_cluster() {
    let Some(c) = cluster() else { return };
    let ws = c.workspace();
    ws.write(
        "src/count.py",
        "import os, time, tug\nfor i in range(8):\n    tug.log('step', i)\n    print('tick', i, flush=True)\n    time.sleep(1)\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/done.txt', 'w').write('done')\n",
    );
    let id = ws.submit("job.yml", &k8s_job("python3 count.py", ""));
    ws.wait_for(&id, LIMIT, |v| v["status"] == "Running");
    std::thread::sleep(Duration::from_secs(2));
    let pid = ws.server_pid().unwrap();
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(500));
    // The next command starts a new server, which re-attaches to the run.
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}");
    let log = std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt")).unwrap();
    for i in 0..8 {
        assert_eq!(
            log.matches(&format!("tick {i}\n")).count(),
            1,
            "each line once: {log}"
        );
    }
    assert_eq!(
        common::metric_series(&v, &ws, &id, "step"),
        (0..8).map(f64::from).collect::<Vec<_>>()
    );
    assert!(ws.run_dir(&id).join("outputs/done.txt").is_file());
    c.assert_nothing_left(&ws);
}

/// A job on the cluster logging through the real MLflow client (the curated minimal
/// stand-in has mlflow-skinny), one step a second, while the test kills the server.
const MLFLOW_SCRIPT: &str = r#"
import os, time, mlflow
print("URI", mlflow.get_tracking_uri(), flush=True)
mlflow.log_param("route", os.environ["ROUTE"])
for i in range(8):
    mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    print("tick", i, flush=True)
    time.sleep(1)
mlflow.log_text("hello from the cluster", "notes/hello.txt")
"#;

#[test]
fn mlflow_reaches_tug_from_the_cluster_directly_and_through_the_tunnel() {
    let Some(c) = cluster() else { return };
    common::require_image("tug/curated:minimal");
    // Left to itself the route follows the API server: on loopback here, so direct.
    let ws = c.workspace();
    let shown = ws.json(&["compute", "show", "-n", "k8s"]);
    assert_eq!(shown["tracking"], "auto", "{shown:#}");
    assert_eq!(shown["cluster"]["tracking"], "direct", "{shown:#}");
    drop(ws);
    for (route, uri) in [
        ("direct", "http://172."),
        ("tunnel", "http://127.0.0.1:47617"),
    ] {
        let ws = c.workspace_with(&format!("    tracking: {route}\n"));
        ws.write("src/log.py", MLFLOW_SCRIPT);
        let id = ws.submit(
            "job.yml",
            &format!(
                "experiment_name: k8s-mlflow\ncode: src\ncommand: python log.py\n\
                 environment: azureml:AzureML-Minimal@latest\ncompute: azureml:k8s\n\
                 environment_variables:\n  ROUTE: {route}\n"
            ),
        );
        ws.wait_for(&id, LIMIT, |v| {
            v["status"] == "Running" && v["params"]["route"] == route
        });
        // A server killed mid-run: the next one carries the run's calls again (the
        // tunnel's relay holds a call until the new server's connections arrive).
        let pid = ws.server_pid().unwrap();
        unsafe { libc::kill(pid, libc::SIGKILL) };
        std::thread::sleep(Duration::from_millis(500));
        let v = ws.wait(&id, LIMIT);
        let log = std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt"))
            .unwrap_or_default();
        assert_eq!(v["status"], "Completed", "{route}: {v:#}\n{log}");
        assert!(log.contains(&format!("URI {uri}")), "{route}: {log}");
        assert_eq!(
            common::metric_series(&v, &ws, &id, "loss"),
            (0..8).map(|i| 1.0 / f64::from(i + 1)).collect::<Vec<_>>(),
            "{route}: every step once"
        );
        assert_eq!(
            std::fs::read_to_string(ws.run_dir(&id).join("notes/hello.txt")).unwrap(),
            "hello from the cluster",
            "{route}"
        );
        c.assert_nothing_left(&ws);
    }
}

#[test]
fn a_sweep_on_the_cluster_stops_the_trial_bandit_names() {
    let Some(c) = cluster() else { return };
    use common::sweep::{TRIAL, bandit_sweep, sweep_id, trials};
    let ws = c.workspace();
    ws.write("src/trial.py", TRIAL);
    // As in the Docker sweep test: a=0.1 scores 1 and reports 3x slower; bandit stops it.
    ws.write("sweep.yml", &bandit_sweep());
    // The sweep stays local; its trials go to the cluster (tug's `trial.compute`).
    let streamed = ws.ok(&[
        "job",
        "create",
        "-f",
        "sweep.yml",
        "--set",
        "trial.compute=azureml:k8s",
        "--stream",
    ]);
    assert!(streamed.contains("stopped early: bandit"), "{streamed}");
    let id = sweep_id(&streamed);
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}");
    for t in trials(&v) {
        let trial = ws.show(t["id"].as_str().unwrap());
        assert!(
            trial["container"]
                .as_str()
                .unwrap_or_default()
                .contains('/'),
            "trials ran on the cluster: {trial:#}"
        );
        let expected = if t["params"]["a"] == 0.1 {
            "Canceled"
        } else {
            "Completed"
        };
        assert_eq!(t["status"], expected, "{t:#}");
    }
    c.assert_nothing_left(&ws);
}

/// Deletes a namespace when dropped (the test's own, made for one test).
struct TempNamespace<'a> {
    cluster: &'a Cluster,
    name: String,
}

impl Drop for TempNamespace<'_> {
    fn drop(&mut self) {
        use k8s_openapi::api::core::v1::Namespace;
        let name = self.name.clone();
        self.cluster.with_client(async move |client| {
            let api: Api<Namespace> = Api::all(client);
            let _ = api.delete(&name, &Default::default()).await;
        });
    }
}

#[test]
fn the_manifests_role_is_all_a_run_and_an_endpoint_need() {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let Some(c) = cluster() else { return };
    let ns = format!("tug-rbac-{}", std::process::id());
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/rbac.yaml"),
    )
    .unwrap()
    .replace("namespace: tug", &format!("namespace: {ns}"));
    let docs: Vec<Value> = text
        .split("\n---\n")
        .map(|d| serde_yaml::from_str(d).unwrap())
        .collect();
    let of = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("rbac.yaml has a {kind}"))
    };
    let _guard = TempNamespace {
        cluster: &c,
        name: ns.clone(),
    };
    let token = c.with_client(async |client| {
        let pp = Default::default();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut n = Namespace::default();
        n.metadata.name = Some(ns.clone());
        namespaces.create(&pp, &n).await.unwrap();
        let sa: ServiceAccount = serde_json::from_value(of("ServiceAccount")).unwrap();
        let role: Role = serde_json::from_value(of("Role")).unwrap();
        let binding: RoleBinding = serde_json::from_value(of("RoleBinding")).unwrap();
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        sas.create(&pp, &sa).await.unwrap();
        Api::<Role>::namespaced(client.clone(), &ns)
            .create(&pp, &role)
            .await
            .unwrap();
        Api::<RoleBinding>::namespaced(client.clone(), &ns)
            .create(&pp, &binding)
            .await
            .unwrap();
        let req = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![],
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let tr: TokenRequest = sas
            .create_subresource("token", "tug", &pp, &req)
            .await
            .unwrap();
        tr.status.unwrap().token
    });

    // A kubeconfig for the ServiceAccount: the admin's cluster entry, the account's token.
    let admin: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&c.kubeconfig).unwrap()).unwrap();
    let current = admin["current-context"].as_str().unwrap();
    let context = admin["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == current)
        .unwrap();
    let cluster_name = context["context"]["cluster"].as_str().unwrap();
    let cluster = admin["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == cluster_name)
        .unwrap();
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "tug", "user": {"token": token}}],
        "contexts": [{"name": "tug", "context": {"cluster": cluster_name, "user": "tug", "namespace": ns}}],
        "current-context": "tug",
    });
    let limited = Cluster {
        kubeconfig: String::new(),
        namespace: ns.clone(),
    };
    let ws = limited.workspace();
    let path = ws.write(
        "sa.kubeconfig",
        &serde_yaml::to_string(&kubeconfig).unwrap(),
    );
    ws.write(
        ".tug/config.yaml",
        &format!(
            "compute:\n  k8s:\n    type: kubernetes\n    kubeconfig: {}\n    namespace: {ns}\n    images: local\n",
            path.display()
        ),
    );
    ws.set_secret("TOKEN", "rbac-secret-value");
    ws.write(
        "src/ok.py",
        "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/ok.txt', 'w').write(str(len(os.environ['TOKEN'])))\nprint('ran as the service account', flush=True)\n",
    );
    let id = ws.submit(
        "job.yml",
        &k8s_job(
            "python3 ok.py",
            "environment_variables:\n  TOKEN: ${{secrets.TOKEN}}\n",
        ),
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}\n{}", ws.server_log());
    assert_eq!(
        std::fs::read_to_string(ws.run_dir(&id).join("outputs/ok.txt")).unwrap(),
        "17"
    );
    // An online endpoint too: router, deployment, invoke through the port-forward,
    // rotated keys, delete.
    ws.write("score/score.py", include_str!("scoring/offset.py"));
    ws.write("model/model.json", r#"{"offset": 10}"#);
    ws.ok(&[
        "model",
        "create",
        "--name",
        "offset",
        "--path",
        "model/model.json",
    ]);
    ws.write("ep.yml", "name: ep-rbac\ncompute: azureml:k8s\n");
    ws.ok(&["online-endpoint", "create", "-f", "ep.yml"]);
    ws.write(
        "blue.yml",
        &format!(
            "name: blue\ntype: kubernetes\nendpoint_name: ep-rbac\nmodel: azureml:offset@latest\ncode_configuration:\n  code: score\n  scoring_script: score.py\nenvironment:\n  image: {MINIMAL}\ninstance_count: 1\nreadiness_probe:\n  initial_delay: 1\n  period: 1\n"
        ),
    );
    ws.ok(&[
        "online-deployment",
        "create",
        "-f",
        "blue.yml",
        "--all-traffic",
    ]);
    ws.write("req.json", r#"{"data": [1]}"#);
    let out = ws.ok(&[
        "online-endpoint",
        "invoke",
        "-n",
        "ep-rbac",
        "--request-file",
        "req.json",
    ]);
    assert!(out.contains("[11]"), "{out}");
    ws.ok(&[
        "online-endpoint",
        "regenerate-keys",
        "-n",
        "ep-rbac",
        "--key-type",
        "secondary",
    ]);
    ws.ok(&["online-endpoint", "delete", "-n", "ep-rbac", "--yes"]);

    // And no more: the account cannot read Secrets back or touch other namespaces.
    let denied = ws.tug(&["compute", "show", "-n", "k8s"]);
    let shown = String::from_utf8_lossy(&denied.stdout);
    assert!(
        shown.contains("reachable: false") && shown.contains("forbidden"),
        "without the optional node reader, listing nodes is refused: {shown}"
    );
}

/// A run with everything tug can put in its objects: secrets, limits and requests, a GPU,
/// shm, a host mount, placement.
fn full_spec() -> tug::compute::RunSpec {
    use tug::compute::{HostMount, Limits, RunSpec, config::Toleration};
    RunSpec {
        workspace_id: "ab12cd34ef56".into(),
        run_id: "Schema_Check_1".into(),
        image: MINIMAL.to_string(),
        command: "python3 -c 'print(1)'".into(),
        working_dir: "/tug/code".into(),
        env: [
            ("A".to_string(), "1".to_string()),
            ("DB".to_string(), "hunter2".to_string()),
            (
                "MLFLOW_TRACKING_URI".to_string(),
                "http://172.17.0.1:41000".to_string(),
            ),
            ("MLFLOW_TRACKING_TOKEN".to_string(), "tug-run.x".to_string()),
        ]
        .into(),
        secret_env: ["DB".to_string(), "MLFLOW_TRACKING_TOKEN".to_string()].into(),
        user: Some("1000:1000".into()),
        files: vec![],
        owner: (1000, 1000),
        dir_mode: 0o755,
        mounts: vec![HostMount {
            host: "/tmp".into(),
            container: "/tug/inputs/d".into(),
        }],
        limits: Limits {
            nano_cpus: Some(1_500_000_000),
            memory_bytes: Some(1 << 30),
            cpu_request_nanos: Some(100_000_000),
            memory_request_bytes: Some(256 << 20),
            shm_bytes: Some(64 << 20),
            gpus: Some(1),
            node_selector: [("pool".to_string(), "gpu".to_string())].into(),
            tolerations: vec![Toleration {
                key: Some("gpu".into()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            }],
        },
        collect: vec![],
    }
}

fn full_objects(namespace: &str) -> (Job, k8s_openapi::api::core::v1::Secret) {
    use tug::compute::kubernetes::objects::{JobOptions, run_job, run_secret};
    let opts = JobOptions {
        namespace: namespace.into(),
        pull_policy: "IfNotPresent".into(),
        image_pull_secret: Some("regcred".into()),
        host_paths: true,
        // With the relay: its environment and command are checked too.
        tracking_tunnel: true,
    };
    let spec = full_spec();
    (run_job(&spec, &opts), run_secret(&spec, &opts).unwrap())
}

#[test]
fn run_objects_are_valid_on_current_kubernetes_schemas() {
    let (job, secret) = full_objects("ml");
    common::cluster::valid_on_current_schemas(&[
        serde_json::to_value(&job).unwrap(),
        serde_json::to_value(&secret).unwrap(),
    ]);
}

#[test]
fn run_objects_pass_the_live_servers_validation() {
    let Some(c) = cluster() else { return };
    use kube::api::PostParams;
    let (job, secret) = full_objects(&c.namespace);
    let dry = PostParams {
        dry_run: true,
        field_manager: Some("tug".into()),
    };
    c.with_client(async |client| {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(client.clone(), &c.namespace);
        secrets.create(&dry, &secret).await.unwrap();
        let jobs: Api<Job> = Api::namespaced(client, &c.namespace);
        let accepted = jobs.create(&dry, &job).await.unwrap();
        // What the server kept is what tug sent (1.20 drops fields it does not know).
        let pod = accepted.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.share_process_namespace, Some(true));
        let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["main", "collector"]);
        assert_eq!(pod.automount_service_account_token, Some(false));
    });
}

#[test]
fn a_run_waiting_for_a_node_is_canceled_at_once() {
    let Some(c) = cluster() else { return };
    // An instance type no node can take: the pod stays Pending.
    let ws = c.workspace_with(
        "    instance_types:\n      nowhere: {cpu: 1, memory: 1Gi, node_selector: {tug-test/pool: none}}\n",
    );
    ws.write("src/never.py", "print('never runs')\n");
    let id = ws.submit(
        "job.yml",
        &k8s_job("python3 never.py", "resources:\n  instance_type: nowhere\n"),
    );
    ws.wait_for(&id, LIMIT, |v| v["status"] == "Starting");
    std::thread::sleep(Duration::from_secs(2));
    let start = Instant::now();
    ws.ok(&["job", "cancel", &id]);
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Canceled", "{v:#}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "canceled while starting: {:?}",
        start.elapsed()
    );
    c.assert_nothing_left(&ws);
}
