//! The cluster the Kubernetes e2e suites run against, and what they check on it.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
// v1 lists every autoscaler, whatever version created it.
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, ListParams};

use super::Ws;

pub struct Cluster {
    pub kubeconfig: String,
    pub namespace: String,
}

/// The cluster under test, or `None` (after saying so) when none is given.
pub fn cluster() -> Option<Cluster> {
    match std::env::var("TUG_E2E_KUBECONFIG") {
        Ok(k) if !k.is_empty() => Some(Cluster {
            kubeconfig: k,
            namespace: std::env::var("TUG_E2E_NAMESPACE").unwrap_or_else(|_| "default".into()),
        }),
        _ => {
            assert!(
                std::env::var("TUG_E2E_REQUIRED").as_deref() != Ok("1"),
                "TUG_E2E_REQUIRED=1 but TUG_E2E_KUBECONFIG names no cluster: start one with `tests/k8s/cluster.sh start`"
            );
            eprintln!(
                "skipped: no cluster (set TUG_E2E_KUBECONFIG to run the Kubernetes e2e suite)"
            );
            None
        }
    }
}

impl Cluster {
    /// A workspace whose `k8s` compute is this cluster.
    pub fn workspace(&self) -> Ws {
        self.workspace_with("")
    }

    /// A workspace whose `k8s` compute is this cluster, with `extra` (YAML lines indented
    /// under the entry) added to its config.
    pub fn workspace_with(&self, extra: &str) -> Ws {
        let ws = Ws::new();
        ws.write(
            ".tug/config.yaml",
            &format!(
                "compute:\n  k8s:\n    type: kubernetes\n    kubeconfig: {}\n    namespace: {}\n    images: local\n{extra}",
                self.kubeconfig, self.namespace
            ),
        );
        ws
    }

    /// Runs `f` with a client for the cluster, on a runtime of its own.
    pub fn with_client<T>(&self, f: impl AsyncFnOnce(kube::Client) -> T) -> T {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            f(kube::Client::try_from(config).unwrap()).await
        })
    }

    /// Names of the workspace's objects (Jobs, pods, Deployments, Services, ConfigMaps,
    /// Secrets, autoscalers) still in the namespace (pods being deleted
    /// are counted: "nothing left" means gone).
    pub fn leftovers(&self, ws: &Ws) -> Vec<String> {
        let Some(ws_id) = ws.workspace_id() else {
            return vec![];
        };
        let lp = ListParams::default().labels(&format!("tug.workspace={ws_id}"));
        self.with_client(async |client| {
            let ns = &self.namespace;
            let mut names = Vec::new();
            names.extend(named(Api::<Job>::namespaced(client.clone(), ns), &lp, "job").await);
            names.extend(named(Api::<Pod>::namespaced(client.clone(), ns), &lp, "pod").await);
            names.extend(
                named(
                    Api::<Deployment>::namespaced(client.clone(), ns),
                    &lp,
                    "deployment",
                )
                .await,
            );
            names.extend(
                named(
                    Api::<Service>::namespaced(client.clone(), ns),
                    &lp,
                    "service",
                )
                .await,
            );
            names.extend(
                named(
                    Api::<ConfigMap>::namespaced(client.clone(), ns),
                    &lp,
                    "configmap",
                )
                .await,
            );
            names.extend(named(Api::<Secret>::namespaced(client.clone(), ns), &lp, "secret").await);
            names.extend(
                named(
                    Api::<HorizontalPodAutoscaler>::namespaced(client, ns),
                    &lp,
                    "hpa",
                )
                .await,
            );
            names
        })
    }

    /// Waits (up to 60 s) until the workspace has no Job or pod left.
    pub fn assert_nothing_left(&self, ws: &Ws) {
        let start = Instant::now();
        loop {
            let left = self.leftovers(ws);
            if left.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "objects left on the cluster: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// `kind/name` of every object `api` lists.
async fn named<K>(api: Api<K>, lp: &ListParams, kind: &str) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|o| o.meta().name.clone())
        .map(|n| format!("{kind}/{n}"))
        .collect()
}

/// Validates `docs` with `kubernetes-validate --strict` against the schemas of 1.33 and
/// 1.37; false (after saying why) when the tool is missing outside CI.
pub fn valid_on_current_schemas(docs: &[serde_json::Value]) -> bool {
    let have = std::process::Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var("TUG_E2E_REQUIRED").as_deref() != Ok("1"),
            "kubernetes-validate is missing: pip install kubernetes-validate==1.37.0 (make prereqs does)"
        );
        eprintln!("skipped: kubernetes-validate is not installed");
        return false;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![];
    for (i, doc) in docs.iter().enumerate() {
        let path = dir.path().join(format!("{i}.yaml"));
        std::fs::write(&path, serde_yaml::to_string(doc).unwrap()).unwrap();
        files.push(path);
    }
    for version in ["1.33.0", "1.37.0"] {
        let out = std::process::Command::new("kubernetes-validate")
            .args(["-k", version, "--strict"])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "Kubernetes {version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    true
}
