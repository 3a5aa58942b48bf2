//! `tug compute list|show|attach|detach`: the workspace's compute targets, as
//! `az ml compute` shows them; `show` asks a cluster how it is.

use std::process::ExitCode;

use clap::Subcommand;

use super::{Context_, output};
use crate::compute::config::{
    EndpointService, ImageDelivery, TargetConfig, TrackingRoute, WorkspaceConfig,
};

#[derive(Subcommand, Debug)]
pub enum ComputeCommand {
    /// List compute targets (`local` is always there).
    List,
    /// Show one compute target; for a cluster: whether it answers, its version and nodes.
    Show {
        #[arg(short, long)]
        name: String,
    },
    /// Attach a Kubernetes cluster (a kubeconfig context and namespace) as a compute target.
    Attach {
        #[arg(short, long)]
        name: String,
        /// Only `kubernetes` can be attached (Docker engines are configured in config.yaml).
        #[arg(long = "type", default_value = "kubernetes")]
        kind: String,
        /// The kubeconfig context (the file's current context when absent).
        #[arg(long)]
        context: Option<String>,
        #[arg(long)]
        namespace: Option<String>,
        /// The kubeconfig file (`KUBECONFIG` or `~/.kube/config` when absent).
        #[arg(long)]
        kubeconfig: Option<String>,
        /// How images reach the nodes: local, kind, minikube or registry.
        #[arg(long, value_parser = parse_delivery)]
        images: Option<ImageDelivery>,
        /// The kind cluster or minikube profile name.
        #[arg(long)]
        cluster: Option<String>,
        /// How endpoints are exposed: ClusterIP (the default: through tug's loopback
        /// port-forward), NodePort or LoadBalancer (scoring_uri is then that address).
        #[arg(long, value_parser = parse_service)]
        endpoint_service: Option<EndpointService>,
        /// How runs' MLflow clients reach tug: direct (pods connect to this machine) or
        /// tunnel (through a relay in the pod and the API server's port-forward). When
        /// absent: direct for an API server on loopback, else tunnel.
        #[arg(long, value_parser = parse_tracking)]
        tracking: Option<TrackingRoute>,
        /// Replace a target of the same name.
        #[arg(long)]
        force: bool,
    },
    /// Remove a compute target from the workspace config (nothing on the cluster changes).
    Detach {
        #[arg(short, long)]
        name: String,
    },
}

fn parse_service(s: &str) -> Result<EndpointService, String> {
    serde_yaml::from_str(s).map_err(|_| {
        format!(
            "`{s}` is not a Service type for endpoints: use ClusterIP, NodePort or LoadBalancer"
        )
    })
}

fn parse_tracking(s: &str) -> Result<TrackingRoute, String> {
    serde_yaml::from_str(s).map_err(|_| {
        format!("`{s}` is not a way runs reach tug's tracking API: use direct or tunnel")
    })
}

fn parse_delivery(s: &str) -> Result<ImageDelivery, String> {
    serde_yaml::from_str(s).map_err(|_| {
        format!("`{s}` is not a way images reach a cluster: use local, kind, minikube or registry")
    })
}

pub async fn run(ctx: &Context_, cmd: ComputeCommand) -> anyhow::Result<ExitCode> {
    let ws = ctx.workspace()?;
    let path = ws.config_path();
    let file = path.display().to_string();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut config = WorkspaceConfig::parse(&file, &text)?;
    let mut names: Vec<String> = vec!["local".into()];
    names.extend(config.compute.keys().filter(|k| *k != "local").cloned());
    match cmd {
        ComputeCommand::List => {
            let all: Vec<_> = names
                .iter()
                .map(|n| config.target(n, &file).map(|t| describe(n, &t)))
                .collect::<Result<_, _>>()?;
            if !output::structured(ctx.output, &all)? {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|v| {
                        ["name", "type", "where"]
                            .iter()
                            .map(|k| v[k].as_str().unwrap_or("").to_string())
                            .collect()
                    })
                    .collect();
                println!("{}", output::table(&["NAME", "TYPE", "WHERE"], &rows));
            }
        }
        ComputeCommand::Show { name } => {
            let t = config.target(&name, &file)?;
            let mut v = describe(&name, &t);
            if t.is_kubernetes() {
                v["cluster"] = cluster_status(&name, &t).await;
            }
            if !output::structured(ctx.output, &v)? {
                print!("{}", serde_yaml::to_string(&v)?);
            }
        }
        ComputeCommand::Attach {
            name,
            kind,
            context,
            namespace,
            kubeconfig,
            images,
            cluster,
            endpoint_service,
            tracking,
            force,
        } => {
            anyhow::ensure!(
                kind == "kubernetes",
                "`--type {kind}`: only Kubernetes clusters are attached; a Docker engine is a `type: docker` entry under `compute:` in {file}"
            );
            anyhow::ensure!(
                name != "local",
                "`local` is this machine's Docker engine; pick another name for the cluster"
            );
            anyhow::ensure!(
                force || !config.compute.contains_key(&name),
                "compute `{name}` already exists in {file}; pass --force to replace it"
            );
            let target = TargetConfig {
                kind,
                kubeconfig,
                context,
                namespace,
                images,
                cluster,
                endpoint_service,
                tracking,
                ..Default::default()
            };
            config.compute.insert(name.clone(), target.clone());
            let yaml = serde_yaml::to_string(&config)?;
            // Checked the way every later read checks it, before the file is replaced.
            WorkspaceConfig::parse(&file, &yaml)?;
            write_atomically(&path, &yaml)?;
            let mut v = describe(&name, &target);
            v["cluster"] = cluster_status(&name, &target).await;
            if !output::structured(ctx.output, &v)? {
                println!("Attached compute {name} in {file}");
                print!("{}", serde_yaml::to_string(&v)?);
            }
        }
        ComputeCommand::Detach { name } => {
            anyhow::ensure!(
                config.compute.remove(&name).is_some(),
                "no compute `{name}` in {file}"
            );
            write_atomically(&path, &serde_yaml::to_string(&config)?)?;
            println!("Detached compute {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(path)?;
    Ok(())
}

fn describe(name: &str, t: &TargetConfig) -> serde_json::Value {
    let place = if t.is_kubernetes() {
        format!(
            "{}{} namespace {}",
            t.context
                .as_deref()
                .map(|c| format!("context {c}"))
                .unwrap_or_else(|| "current context".into()),
            t.kubeconfig
                .as_deref()
                .map(|k| format!(" of {k}"))
                .unwrap_or_default(),
            t.namespace.as_deref().unwrap_or("default")
        )
    } else {
        t.host
            .clone()
            .unwrap_or_else(|| "local Docker engine".into())
    };
    let mut v = serde_json::json!({
        "name": name,
        "type": t.kind,
        "where": place,
        "instance_types": t.instance_types.keys().collect::<Vec<_>>(),
    });
    if t.is_kubernetes() {
        v["images"] = t.images.unwrap_or(ImageDelivery::Local).as_str().into();
        v["tracking"] = t
            .tracking
            .map(TrackingRoute::as_str)
            .unwrap_or("auto")
            .into();
    }
    v
}

async fn cluster_status(name: &str, t: &TargetConfig) -> serde_json::Value {
    match crate::compute::kubernetes::cluster_info(name, t).await {
        Ok(info) => serde_json::to_value(info).expect("serializes"),
        Err(e) => serde_json::json!({"reachable": false, "error": e.to_string()}),
    }
}
