//! Online endpoints on a real cluster (`TUG_E2E_KUBECONFIG`, as in `k8s_e2e.rs`), through
//! the real CLI: deploy and invoke through tug's loopback port-forward, key auth, a 70/30
//! split checked statistically, a rolling update under load that drops nothing, a server
//! SIGKILL and restart, a deployment whose init() fails, and deletes that leave no object.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, cluster};
use common::{MINIMAL, Ws};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

const SCORE: &str = include_str!("scoring/offset.py");

fn deployment(name: &str, extra: &str) -> String {
    format!(
        "name: {name}\n\
         type: kubernetes\n\
         endpoint_name: ep-k8s\n\
         model: azureml:offset@latest\n\
         code_configuration:\n  code: score\n  scoring_script: score.py\n\
         environment:\n  image: {MINIMAL}\n\
         instance_count: 1\n\
         readiness_probe:\n  initial_delay: 1\n  period: 1\n  failure_threshold: 120\n\
         {extra}"
    )
}

/// The workspace, the model, and a Succeeded endpoint on the cluster: (port, key).
fn setup(c: &Cluster) -> (Ws, u16, String) {
    common::require_image(MINIMAL);
    let ws = c.workspace();
    ws.write("score/score.py", SCORE);
    ws.write("model/model.json", r#"{"offset": 10}"#);
    ws.ok(&[
        "model",
        "create",
        "--name",
        "offset",
        "--path",
        "model/model.json",
    ]);
    ws.write(
        "endpoint.yml",
        "name: ep-k8s\ncompute: azureml:k8s\nauth_mode: key\n",
    );
    let ep = ws.json(&["online-endpoint", "create", "-f", "endpoint.yml"]);
    assert_eq!(ep["state"], "Succeeded", "{ep}");
    let port = ep["port"].as_u64().unwrap() as u16;
    let creds = ws.json(&["online-endpoint", "get-credentials", "-n", "ep-k8s"]);
    let key = creds["primaryKey"].as_str().unwrap().to_string();
    (ws, port, key)
}

fn score(
    port: u16,
    key: Option<&str>,
    deployment: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut req = client
        .post(format!("http://127.0.0.1:{port}/score"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(d) = deployment {
        req = req.header("azureml-model-deployment", d);
    }
    match req.send() {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let dep = resp
                .headers()
                .get("azureml-model-deployment")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (status, dep, resp.text().unwrap_or_default())
        }
        Err(e) => (0, String::new(), e.to_string()),
    }
}

/// The deployment's pods (every generation) still in the namespace.
fn pods(c: &Cluster, ws: &Ws, dep: &str) -> Vec<Pod> {
    let sel = format!(
        "tug.workspace={},tug.endpoint=ep-k8s,tug.deployment={dep}",
        ws.workspace_id().unwrap()
    );
    c.with_client(async |client| {
        Api::<Pod>::namespaced(client, &c.namespace)
            .list(&ListParams::default().labels(&sel))
            .await
            .unwrap()
            .items
    })
}

fn generations(c: &Cluster, ws: &Ws, dep: &str) -> Vec<String> {
    let sel = format!(
        "tug.workspace={},tug.deployment={dep}",
        ws.workspace_id().unwrap()
    );
    c.with_client(async |client| {
        Api::<Deployment>::namespaced(client, &c.namespace)
            .list(&ListParams::default().labels(&sel))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|d| d.metadata.name)
            .collect()
    })
}

#[test]
fn deploy_invoke_split_roll_restart_and_delete_on_the_cluster() {
    let Some(c) = cluster() else { return };
    let (ws, port, key) = setup(&c);
    ws.write(
        "blue.yml",
        &deployment("blue", "environment_variables:\n  WHO: blue\n"),
    );
    let out = ws.tug(&[
        "online-deployment",
        "create",
        "-f",
        "blue.yml",
        "--all-traffic",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Invoke through the CLI and over plain HTTP on the endpoint's loopback port.
    ws.write("req.json", r#"{"data": [1, 2]}"#);
    let out = ws.ok(&[
        "online-endpoint",
        "invoke",
        "-n",
        "ep-k8s",
        "--request-file",
        "req.json",
    ]);
    assert!(out.contains("[11, 12]"), "{out}");
    let (code, dep, body) = score(port, Some(&key), None, r#"{"data": [5]}"#);
    assert_eq!((code, dep.as_str()), (200, "blue"), "{body}");
    assert_eq!(score(port, None, None, r#"{"data": [1]}"#).0, 401);
    assert_eq!(score(port, Some("wrong"), None, r#"{"data": [1]}"#).0, 401);

    // The pods: non-root, probed, no service-account token, Azure's default instance type.
    let blue = pods(&c, &ws, "blue");
    assert_eq!(blue.len(), 1);
    let spec = blue[0].spec.clone().unwrap();
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(
        spec.security_context.unwrap().run_as_user,
        Some(1000),
        "a root image runs as uid 1000"
    );
    let container = &spec.containers[0];
    assert!(container.readiness_probe.is_some() && container.liveness_probe.is_some());
    let limits = container.resources.clone().unwrap().limits.unwrap();
    assert_eq!(limits["memory"].0, "2Gi", "defaultinstancetype's limit");

    // Green: two replicas with `resources`, then a 70/30 split.
    ws.write(
        "green.yml",
        &deployment(
            "green",
            "environment_variables:\n  WHO: green\nresources:\n  requests:\n    cpu: 50m\n    memory: 64Mi\n  limits:\n    cpu: \"0.5\"\n    memory: 512Mi\n",
        )
        .replace("instance_count: 1", "instance_count: 2"),
    );
    ws.ok(&["online-deployment", "create", "-f", "green.yml"]);
    let green = pods(&c, &ws, "green");
    assert_eq!(green.len(), 2, "instance_count: 2 runs two pods");
    let res = green[0].spec.clone().unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(res.limits.unwrap()["memory"].0, "512Mi");
    assert_eq!(res.requests.unwrap()["cpu"].0, "50m");
    let (_, dep, _) = score(port, Some(&key), Some("green"), r#"{"data": [1]}"#);
    assert_eq!(dep, "green", "the header reaches a 0% deployment");
    ws.ok(&[
        "online-endpoint",
        "update",
        "-n",
        "ep-k8s",
        "--traffic",
        "blue=70 green=30",
    ]);
    let n = 300;
    let mut to_blue = 0;
    for _ in 0..n {
        let (code, dep, body) = score(port, Some(&key), None, r#"{"data": [1]}"#);
        assert_eq!(code, 200, "{body}");
        if dep == "blue" {
            to_blue += 1;
        }
    }
    // Binomial(300, 0.7): mean 210, sd 7.9; 5 sd either side.
    assert!((170..=250).contains(&to_blue), "blue got {to_blue} of {n}");

    // A rolling update of blue under load: every request succeeds, the old generation goes.
    let before = generations(&c, &ws, "blue");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, key) = (stop.clone(), key.clone());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (code, _, body) = score(port, Some(&key), None, r#"{"data": [1]}"#);
                sent += 1;
                if code != 200 {
                    failures.push(format!("{code} {body}"));
                }
            }
            (sent, failures)
        })
    };
    ws.write(
        "blue.yml",
        &deployment("blue", "environment_variables:\n  WHO: blue-2\n"),
    );
    ws.ok(&["online-deployment", "update", "-f", "blue.yml"]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (sent, failures) = load.join().unwrap();
    assert!(
        sent > 10,
        "the load ran during the update ({sent} requests)"
    );
    assert!(failures.is_empty(), "failed during the roll: {failures:?}");
    let after = generations(&c, &ws, "blue");
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(!before.contains(&after[0]), "{before:?} {after:?}");
    let (_, _, body) = score(port, Some(&key), Some("blue"), r#"{"data": [1]}"#);
    assert!(body.contains("blue-2"), "the new generation serves: {body}");

    // A regenerated key works at once, the old one stops, and the cluster's copy of the
    // keys holds the new one only.
    ws.ok(&[
        "online-endpoint",
        "regenerate-keys",
        "-n",
        "ep-k8s",
        "--key-type",
        "primary",
    ]);
    let creds = ws.json(&["online-endpoint", "get-credentials", "-n", "ep-k8s"]);
    let new_key = creds["primaryKey"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert_eq!(score(port, Some(&key), None, r#"{"data": [1]}"#).0, 401);
    assert_eq!(score(port, Some(&new_key), None, r#"{"data": [1]}"#).0, 200);
    let sel = format!(
        "tug.workspace={},tug.endpoint=ep-k8s",
        ws.workspace_id().unwrap()
    );
    let stored: Vec<Vec<u8>> = c.with_client(async |client| {
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client, &c.namespace)
            .list(&ListParams::default().labels(&sel))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|s| s.data?.get("primaryKey").map(|b| b.0.clone()))
            .collect()
    });
    assert_eq!(stored, [new_key.clone().into_bytes()]);

    // The server killed: the endpoint keeps running on the cluster, and the next tug
    // command brings back the loopback port.
    let pid = ws.server_pid().expect("a server runs");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(500));
    let out = ws.ok(&[
        "online-endpoint",
        "invoke",
        "-n",
        "ep-k8s",
        "--request-file",
        "req.json",
        "--deployment-name",
        "blue",
    ]);
    assert!(out.contains("[11, 12]"), "{out}");

    // Deleting green (after moving its traffic) removes its pods; deleting the endpoint
    // leaves no object of the workspace.
    ws.ok(&[
        "online-endpoint",
        "update",
        "-n",
        "ep-k8s",
        "--traffic",
        "blue=100",
    ]);
    ws.ok(&["online-deployment", "delete", "-n", "green", "-e", "ep-k8s"]);
    assert!(generations(&c, &ws, "green").is_empty());
    ws.ok(&["online-endpoint", "delete", "-n", "ep-k8s", "--yes"]);
    c.assert_nothing_left(&ws);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the loopback port still answers after the delete"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_failing_init_fails_the_deployment_with_the_traceback_and_removes_its_pods() {
    let Some(c) = cluster() else { return };
    let (ws, _, _) = setup(&c);
    ws.write(
        "bad.yml",
        &deployment("bad", "environment_variables:\n  FAIL_INIT: \"1\"\n"),
    );
    let out = ws.tug(&["online-deployment", "create", "-f", "bad.yml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("init failed on purpose"), "{err}");
    assert!(generations(&c, &ws, "bad").is_empty());
    ws.ok(&["online-endpoint", "delete", "-n", "ep-k8s", "--yes"]);
    c.assert_nothing_left(&ws);
}

#[test]
fn a_node_port_endpoint_gives_the_node_address_as_its_scoring_uri() {
    let Some(c) = cluster() else { return };
    let ws = c.workspace_with("    endpoint_service: NodePort\n");
    ws.write("endpoint.yml", "name: ep-np\ncompute: azureml:k8s\n");
    let ep = ws.json(&["online-endpoint", "create", "-f", "endpoint.yml"]);
    assert_eq!(ep["state"], "Succeeded", "{ep}");
    let sel = format!(
        "tug.workspace={},tug.endpoint=ep-np",
        ws.workspace_id().unwrap()
    );
    let (node_port, addresses) = c.with_client(async |client| {
        let svc =
            Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), &c.namespace)
                .list(&ListParams::default().labels(&sel))
                .await
                .unwrap()
                .items
                .remove(0);
        let spec = svc.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(client)
            .list(&Default::default())
            .await
            .unwrap();
        let addresses: Vec<String> = nodes
            .items
            .into_iter()
            .flat_map(|n| n.status.unwrap().addresses.unwrap_or_default())
            .map(|a| a.address)
            .collect();
        (spec.ports.unwrap()[0].node_port.unwrap(), addresses)
    });
    let uri = ep["scoring_uri"].as_str().unwrap();
    assert!(uri.ends_with(&format!(":{node_port}/score")), "{uri}");
    assert!(
        addresses.iter().any(|a| uri.contains(a.as_str())),
        "{uri} {addresses:?}"
    );
    // The loopback port-forward stays (it needs no kube-proxy, which the local cluster lacks).
    let port = ep["port"].as_u64().unwrap();
    let health = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
    ws.ok(&["online-endpoint", "delete", "-n", "ep-np", "--yes"]);
    c.assert_nothing_left(&ws);
}

/// Creates `docs` on the live server with `dryRun=All`: its own validation, whatever
/// its version.
fn server_accepts(c: &Cluster, docs: &[serde_json::Value]) {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
    c.with_client(async |client| {
        for doc in docs {
            let (group, version) = match doc["apiVersion"].as_str().unwrap().split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (
                    String::new(),
                    doc["apiVersion"].as_str().unwrap().to_string(),
                ),
            };
            let gvk = GroupVersionKind::gvk(&group, &version, doc["kind"].as_str().unwrap());
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &c.namespace, &ApiResource::from_gvk(&gvk));
            let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
            let dry = PostParams {
                dry_run: true,
                field_manager: Some("tug".into()),
            };
            if let Err(e) = api.create(&dry, &obj).await {
                panic!("the server refuses {}: {e}\n{doc:#}", doc["kind"]);
            }
        }
    });
}

#[test]
fn a_secret_autoscaled_deployment_and_its_dry_run() {
    let Some(c) = cluster() else { return };
    let (ws, port, key) = setup(&c);
    const VALUE: &str = "s3cr3t-on-the-cluster";
    ws.set_secret("WHO_SECRET", VALUE);
    ws.write(
        "sec.yml",
        &deployment(
            "sec",
            "environment_variables:\n  WHO: ${{secrets.WHO_SECRET}}\nscale_settings:\n  type: target_utilization\n  min_instances: 1\n  max_instances: 3\n  target_utilization_percentage: 60\n",
        ),
    );

    // The dry run: the objects, valid for the live server, with no secret value, and
    // nothing applied.
    let out = ws.ok(&["online-deployment", "create", "-f", "sec.yml", "--dry-run"]);
    assert!(!out.contains(VALUE), "{out}");
    use serde::Deserialize;
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&out)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Secret", "Deployment", "HorizontalPodAutoscaler"]);
    assert!(
        generations(&c, &ws, "sec").is_empty(),
        "a dry run applies nothing"
    );
    server_accepts(&c, &docs);

    // For real: the scorer gets the value, tug's records and logs do not show it.
    ws.ok(&["online-deployment", "create", "-f", "sec.yml"]);
    let (code, _, body) = score(port, Some(&key), Some("sec"), r#"{"data": [1]}"#);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(VALUE), "{body}");
    let shown = ws.ok(&[
        "online-deployment",
        "show",
        "-e",
        "ep-k8s",
        "-n",
        "sec",
        "-o",
        "json",
    ]);
    assert!(!shown.contains(VALUE), "{shown}");
    let logs = ws.ok(&["online-deployment", "get-logs", "-e", "ep-k8s", "-n", "sec"]);
    assert!(
        logs.contains("init who=***") && !logs.contains(VALUE),
        "{logs}"
    );
    let pod = &pods(&c, &ws, "sec")[0];
    let env = serde_json::to_string(&pod.spec.as_ref().unwrap().containers[0].env).unwrap();
    assert!(
        !env.contains(VALUE) && env.contains("secretKeyRef"),
        "{env}"
    );

    // The autoscaler, and what the record says of the cluster's metrics.
    let has_metrics = c.with_client(async |client| {
        client
            .list_api_groups()
            .await
            .unwrap()
            .groups
            .iter()
            .any(|g| g.name == "metrics.k8s.io")
    });
    assert_eq!(
        shown.contains("serves no metrics API"),
        !has_metrics,
        "{shown}"
    );
    let sel = format!(
        "tug.workspace={},tug.deployment=sec",
        ws.workspace_id().unwrap()
    );
    let hpas = c.with_client(async |client| {
        use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
        Api::<HorizontalPodAutoscaler>::namespaced(client, &c.namespace)
            .list(&ListParams::default().labels(&sel))
            .await
            .unwrap()
            .items
    });
    assert_eq!(hpas.len(), 1);
    let spec = hpas[0].spec.clone().unwrap();
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(1), 3));

    ws.ok(&["online-endpoint", "delete", "-n", "ep-k8s", "--yes"]);
    c.assert_nothing_left(&ws);
}

/// Every object kind an endpoint becomes, from the pure builders, fields all set.
fn endpoint_objects(autoscaling: &str) -> Vec<serde_json::Value> {
    use tug::compute::kubernetes::objects::JobOptions;
    use tug::endpoint::kube_objects as obj;
    let opts = JobOptions {
        namespace: "ml".into(),
        pull_policy: "IfNotPresent".into(),
        image_pull_secret: Some("regcred".into()),
        host_paths: false,
        tracking_tunnel: false,
    };
    let rec: tug::endpoint::DeploymentRecord = serde_json::from_value(serde_json::json!({
        "endpoint": "digits", "name": "blue", "state": "Creating", "generation": 1,
        "created_at": "", "updated_at": "",
        "spec": {
            "name": "blue", "endpoint_name": "digits",
            "environment": {"kind": "image", "image": "tug/python:3.11-minimal", "conda_file": null},
            "environment_variables": {"MODE": "fast", "TOKEN": "x"},
            "instance_count": 2, "request_timeout_ms": 5000,
            "max_concurrent_requests_per_instance": 1,
            "autoscale": {"min_instances": 1, "max_instances": 3,
                          "target_utilization_percentage": 70, "polling_interval": 1}
        }
    }))
    .unwrap();
    let limits = tug::compute::Limits {
        nano_cpus: Some(1_000_000_000),
        memory_bytes: Some(1 << 30),
        cpu_request_nanos: Some(100_000_000),
        memory_request_bytes: Some(256 << 20),
        node_selector: [("pool".to_string(), "cpu".to_string())].into(),
        ..Default::default()
    };
    let g = obj::GenerationSpec {
        ws: "0123456789ab",
        deployment: &rec,
        key_sha256: &["ab".repeat(32)],
        generation: 2,
        image: "tug/score:abc",
        user: Some("1000:1000".into()),
        limits: &limits,
        secret_env: [("TOKEN".to_string(), "x".to_string())].into(),
    };
    let creds = tug::endpoint::Credentials {
        primary_key: "p".into(),
        secondary_key: "s".into(),
    };
    let config: tug::serving::router::RouterConfig =
        serde_json::from_value(serde_json::json!({"endpoint": "digits", "deployments": []}))
            .unwrap();
    vec![
        (serde_json::to_value(obj::keys_secret("0123456789ab", "digits", &creds, &opts)).unwrap()),
        (serde_json::to_value(obj::router_config_map(
            "0123456789ab",
            "digits",
            &config,
            &opts,
        ))
        .unwrap()),
        (serde_json::to_value(obj::router_deployment(
            "0123456789ab",
            "digits",
            "tug/infsrv:1",
            &opts,
        ))
        .unwrap()),
        (serde_json::to_value(obj::router_service(
            "0123456789ab",
            "digits",
            tug::compute::config::EndpointService::NodePort,
            &opts,
        ))
        .unwrap()),
        (serde_json::to_value(obj::generation_secret(&g, &opts).unwrap()).unwrap()),
        (serde_json::to_value(obj::generation_deployment(&g, &opts)).unwrap()),
        obj::generation_autoscaler(&g, rec.spec.autoscale.as_ref().unwrap(), autoscaling, &opts),
    ]
}

#[test]
fn endpoint_objects_are_valid_on_current_kubernetes_schemas() {
    common::cluster::valid_on_current_schemas(&endpoint_objects("autoscaling/v2"));
}

#[test]
fn endpoint_objects_pass_the_live_servers_validation() {
    let Some(c) = cluster() else { return };
    let served: Vec<String> = c.with_client(async |client| {
        let groups = client.list_api_groups().await.unwrap().groups;
        let g = groups
            .into_iter()
            .find(|g| g.name == "autoscaling")
            .unwrap();
        g.versions.into_iter().map(|v| v.version).collect()
    });
    let api = tug::endpoint::kube_objects::autoscaling_api(&served).expect("an autoscaling API");
    let mut docs = endpoint_objects(api);
    for d in &mut docs {
        d["metadata"]["namespace"] = c.namespace.clone().into();
    }
    server_accepts(&c, &docs);
}
