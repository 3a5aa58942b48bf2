//! `tug online-endpoint ...` and `tug online-deployment ...`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;

use super::Context_;
use super::output;
use crate::client::{Client, urlencode};
use crate::endpoint::controller::EndpointPatch;
use crate::endpoint::{Credentials, DeploymentRecord, ProvisioningState};
use crate::server::endpoint_api::EndpointView;

#[derive(Subcommand, Debug)]
pub(crate) enum EndpointCommand {
    /// Create an endpoint from its YAML file (its router starts on a loopback port).
    Create {
        #[arg(short, long)]
        file: PathBuf,
        #[arg(short, long)]
        name: Option<String>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Return at once instead of waiting for the router.
        #[arg(long)]
        no_wait: bool,
    },
    /// Show one endpoint: state, scoring URI, traffic, deployments.
    Show {
        #[arg(short, long)]
        name: String,
    },
    /// List endpoints.
    List,
    /// Change traffic, mirror traffic, description or tags.
    Update {
        #[arg(short, long)]
        name: String,
        /// Live traffic split, e.g. "blue=70 green=30".
        #[arg(long)]
        traffic: Option<String>,
        /// Mirrored traffic, e.g. "green=10" (responses are discarded).
        #[arg(long)]
        mirror_traffic: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete an endpoint, its deployments and every container they run.
    Delete {
        #[arg(short, long)]
        name: String,
        /// Do not ask (there is no prompt today; accepted for `az ml` compatibility).
        #[arg(short, long)]
        yes: bool,
    },
    /// Send a request to the endpoint's scoring URI with its key.
    Invoke {
        #[arg(short, long)]
        name: String,
        #[arg(short, long)]
        request_file: PathBuf,
        /// Send to this deployment whatever the traffic split says.
        #[arg(short, long)]
        deployment_name: Option<String>,
    },
    /// Show the endpoint's keys.
    GetCredentials {
        #[arg(short, long)]
        name: String,
    },
    /// Replace the primary or secondary key.
    RegenerateKeys {
        #[arg(short, long)]
        name: String,
        #[arg(long, default_value = "primary")]
        key_type: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum DeploymentCommand {
    /// Create a deployment from its YAML file: build the scoring image, start the
    /// instances, wait until they are ready.
    Create {
        #[arg(short, long)]
        file: PathBuf,
        #[arg(short, long)]
        name: Option<String>,
        #[arg(short, long)]
        endpoint_name: Option<String>,
        /// Send all of the endpoint's traffic to this deployment once it is ready.
        #[arg(long)]
        all_traffic: bool,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        no_wait: bool,
        /// Print the Kubernetes objects the deployment becomes (YAML, or `-o json`), for
        /// kubectl or GitOps; the scoring image is built, nothing is applied.
        #[arg(long)]
        dry_run: bool,
    },
    /// Roll a deployment to a changed file: new instances are ready before old ones stop.
    Update {
        #[arg(short, long)]
        file: PathBuf,
        #[arg(short, long)]
        name: Option<String>,
        #[arg(short, long)]
        endpoint_name: Option<String>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        no_wait: bool,
        /// Print the Kubernetes objects the new generation becomes; nothing is applied.
        #[arg(long)]
        dry_run: bool,
    },
    Show {
        #[arg(short, long)]
        name: String,
        #[arg(short, long)]
        endpoint_name: String,
    },
    List {
        #[arg(short, long)]
        endpoint_name: String,
    },
    /// The instances' logs (also of instances that failed to start).
    GetLogs {
        #[arg(short, long)]
        name: String,
        #[arg(short, long)]
        endpoint_name: String,
        /// Only the last N lines of each instance.
        #[arg(short, long)]
        lines: Option<usize>,
    },
    /// Delete a deployment that gets no live traffic.
    Delete {
        #[arg(short, long)]
        name: String,
        #[arg(short, long)]
        endpoint_name: String,
        #[arg(short, long)]
        yes: bool,
    },
}

fn ep_path(name: &str) -> String {
    format!("/api/endpoints/{}", urlencode(name))
}

fn dep_path(ep: &str, dep: &str) -> String {
    format!("{}/deployments/{}", ep_path(ep), urlencode(dep))
}

/// `"blue=70 green=30"` (spaces or commas) → map.
pub(crate) fn parse_split(flag: &str, s: &str) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for part in s.split([' ', ',']).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').with_context(|| {
            format!("{flag} `{part}`: write NAME=PERCENT, e.g. \"blue=70 green=30\"")
        })?;
        let pct: u32 = v.parse().ok().filter(|p| *p <= 100).with_context(|| {
            format!("{flag} `{part}`: the percentage must be a whole number from 0 to 100")
        })?;
        out.insert(k.to_string(), pct);
    }
    Ok(out)
}

pub(crate) async fn run_endpoint(ctx: &Context_, cmd: EndpointCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EndpointCommand::Create {
            file,
            name,
            set,
            no_wait,
        } => {
            let sets = super::job::parse_sets(&set)?;
            let mut req = crate::deploy::endpoint_request(&ctx.cwd, &file, &sets)?;
            if let Some(n) = name {
                req.name = n;
            }
            let client = Client::connect(&ctx.workspace()?).await?;
            let created: EndpointView = client.post("/api/endpoints", &req).await?;
            let ep = if no_wait {
                created
            } else {
                wait_endpoint(&client, &created.endpoint.name).await?
            };
            print_endpoint(ctx, &ep)?;
            if ep.endpoint.state == ProvisioningState::Failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        EndpointCommand::Show { name } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            let ep: EndpointView = client.get(&ep_path(&name)).await?;
            print_endpoint(ctx, &ep)?;
        }
        EndpointCommand::List => {
            let client = Client::connect(&ctx.workspace()?).await?;
            let all: Vec<EndpointView> = client.get("/api/endpoints").await?;
            if !output::structured(ctx.output, &all)? {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|e| {
                        vec![
                            e.endpoint.name.clone(),
                            format!("{:?}", e.endpoint.state),
                            e.scoring_uri.clone(),
                            split_text(&e.endpoint.traffic),
                            e.deployments.join(", "),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(
                        &["NAME", "STATE", "SCORING URI", "TRAFFIC", "DEPLOYMENTS"],
                        &rows
                    )
                );
            }
        }
        EndpointCommand::Update {
            name,
            traffic,
            mirror_traffic,
            description,
        } => {
            let patch = EndpointPatch {
                traffic: traffic.map(|t| parse_split("--traffic", &t)).transpose()?,
                mirror_traffic: mirror_traffic
                    .map(|t| parse_split("--mirror-traffic", &t))
                    .transpose()?,
                description,
                tags: None,
            };
            let client = Client::connect(&ctx.workspace()?).await?;
            let ep: EndpointView = client
                .send_json(Method::PATCH, &ep_path(&name), &patch)
                .await?;
            print_endpoint(ctx, &ep)?;
        }
        EndpointCommand::Delete { name, .. } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            client.delete(&ep_path(&name)).await?;
            println!("Deleted endpoint {name} and everything it ran");
        }
        EndpointCommand::Invoke {
            name,
            request_file,
            deployment_name,
        } => return invoke(ctx, &name, &request_file, deployment_name.as_deref()).await,
        EndpointCommand::GetCredentials { name } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            let c: Credentials = client
                .get(&format!("{}/credentials", ep_path(&name)))
                .await?;
            if !output::structured(ctx.output, &c)? {
                println!("{}", serde_json::to_string_pretty(&c)?);
            }
        }
        EndpointCommand::RegenerateKeys { name, key_type } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            let _: Credentials = client
                .post(
                    &format!("{}/regenerate-keys", ep_path(&name)),
                    &serde_json::json!({ "key_type": key_type }),
                )
                .await?;
            println!(
                "Regenerated the {key_type} key of {name}; `tug online-endpoint get-credentials -n {name}` shows it"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn invoke(
    ctx: &Context_,
    name: &str,
    request_file: &std::path::Path,
    deployment: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let body = std::fs::read(ctx.cwd.join(request_file))
        .with_context(|| format!("cannot read {}", request_file.display()))?;
    let client = Client::connect(&ctx.workspace()?).await?;
    let ep: EndpointView = client.get(&ep_path(name)).await?;
    let creds: Credentials = client
        .get(&format!("{}/credentials", ep_path(name)))
        .await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut req = http
        .post(&ep.scoring_uri)
        .bearer_auth(&creds.primary_key)
        .header("content-type", "application/json")
        .body(body);
    if let Some(d) = deployment {
        req = req.header("azureml-model-deployment", d);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("calling {}", ep.scoring_uri))?;
    let status = resp.status();
    let served_by = resp
        .headers()
        .get("azureml-model-deployment")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().await?;
    if !status.is_success() {
        eprintln!("error: the endpoint answered {status}: {text}");
        return Ok(ExitCode::FAILURE);
    }
    println!("{text}");
    if let Some(d) = served_by {
        tracing::info!("served by deployment {d}");
    }
    Ok(ExitCode::SUCCESS)
}

fn split_text(map: &BTreeMap<String, u32>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_endpoint(ctx: &Context_, ep: &EndpointView) -> anyhow::Result<()> {
    if output::structured(ctx.output, ep)? {
        return Ok(());
    }
    let e = &ep.endpoint;
    println!("endpoint:     {}", e.name);
    println!("state:        {:?}", e.state);
    if let Some(m) = &e.message {
        println!("message:      {m}");
    }
    println!("scoring_uri:  {}", ep.scoring_uri);
    println!("openapi_uri:  {}", ep.openapi_uri);
    if let Some(c) = &e.compute {
        println!("compute:      {c}");
    }
    if e.external_base.is_some() {
        println!("loopback:     {}/score", e.loopback_base());
    }
    println!("auth_mode:    {}", e.auth_mode);
    println!("traffic:      {}", split_text(&e.traffic));
    if !e.mirror_traffic.is_empty() {
        println!("mirror:       {}", split_text(&e.mirror_traffic));
    }
    println!("deployments:  {}", ep.deployments.join(", "));
    Ok(())
}

/// Polls until the endpoint is no longer being provisioned.
async fn wait_endpoint(client: &Client, name: &str) -> anyhow::Result<EndpointView> {
    let bar = spinner(&format!("endpoint {name}"));
    loop {
        let ep: EndpointView = client.get(&ep_path(name)).await?;
        if !ep.endpoint.state.is_busy() {
            bar.finish_and_clear();
            return Ok(ep);
        }
        bar.set_message(ep.endpoint.message.clone().unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Polls until the deployment operation ends, showing its progress.
async fn wait_deployment(client: &Client, ep: &str, dep: &str) -> anyhow::Result<DeploymentRecord> {
    let bar = spinner(&format!("deployment {ep}/{dep}"));
    loop {
        let d: DeploymentRecord = client.get(&dep_path(ep, dep)).await?;
        if !d.state.is_busy() {
            bar.finish_and_clear();
            return Ok(d);
        }
        bar.set_message(d.message.clone().unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn spinner(prefix: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {prefix}: {wide_msg} [{elapsed}]")
            .expect("valid template"),
    );
    bar.set_prefix(prefix.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

pub(crate) async fn run_deployment(
    ctx: &Context_,
    cmd: DeploymentCommand,
) -> anyhow::Result<ExitCode> {
    match cmd {
        DeploymentCommand::Create {
            file,
            name,
            endpoint_name,
            all_traffic,
            set,
            no_wait,
            dry_run,
        } => {
            let how = ApplyMode {
                update: false,
                all_traffic,
                no_wait,
                dry_run,
            };
            apply(ctx, &file, name, endpoint_name, &set, how).await
        }
        DeploymentCommand::Update {
            file,
            name,
            endpoint_name,
            set,
            no_wait,
            dry_run,
        } => {
            let how = ApplyMode {
                update: true,
                all_traffic: false,
                no_wait,
                dry_run,
            };
            apply(ctx, &file, name, endpoint_name, &set, how).await
        }
        DeploymentCommand::Show {
            name,
            endpoint_name,
        } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            let d: DeploymentRecord = client.get(&dep_path(&endpoint_name, &name)).await?;
            print_deployment(ctx, &d)?;
            Ok(ExitCode::SUCCESS)
        }
        DeploymentCommand::List { endpoint_name } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            let all: Vec<DeploymentRecord> = client
                .get(&format!("{}/deployments", ep_path(&endpoint_name)))
                .await?;
            if !output::structured(ctx.output, &all)? {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|d| {
                        vec![
                            d.name.clone(),
                            format!("{:?}", d.state),
                            d.instances.len().to_string(),
                            d.image.clone().unwrap_or_default(),
                            d.updated_at.clone(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(&["NAME", "STATE", "INSTANCES", "IMAGE", "UPDATED"], &rows)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DeploymentCommand::GetLogs {
            name,
            endpoint_name,
            lines,
        } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            let mut path = format!("{}/logs", dep_path(&endpoint_name, &name));
            if let Some(n) = lines {
                path.push_str(&format!("?lines={n}"));
            }
            let text = client.get_raw(&path).await?.text().await?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        DeploymentCommand::Delete {
            name,
            endpoint_name,
            ..
        } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            client.delete(&dep_path(&endpoint_name, &name)).await?;
            println!("Deleted deployment {endpoint_name}/{name} and its containers");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How `create`/`update` apply a deployment file.
struct ApplyMode {
    update: bool,
    all_traffic: bool,
    no_wait: bool,
    dry_run: bool,
}

async fn apply(
    ctx: &Context_,
    file: &std::path::Path,
    name: Option<String>,
    endpoint_name: Option<String>,
    set: &[String],
    how: ApplyMode,
) -> anyhow::Result<ExitCode> {
    let ApplyMode {
        update,
        all_traffic,
        no_wait,
        dry_run,
    } = how;
    let mut sets = super::job::parse_sets(set)?;
    if let Some(n) = name {
        sets.push(("name".into(), n));
    }
    if let Some(e) = endpoint_name {
        sets.push(("endpoint_name".into(), e));
    }
    // Local checks before anything (a workspace, a server) is created.
    let spec = crate::deploy::load_deployment(&ctx.cwd, file, &sets)?;
    let client = Client::connect(&ctx.workspace()?).await?;
    let sub = crate::deploy::deployment_submission(&client, &ctx.cwd, file, spec).await?;
    let (ep, dep) = (sub.endpoint_name.clone(), sub.name.clone());
    if dry_run {
        let (method, path) = if update {
            (Method::PUT, dep_path(&ep, &dep))
        } else {
            (Method::POST, format!("{}/deployments", ep_path(&ep)))
        };
        let objects: Vec<serde_json::Value> = client
            .send_json(method, &format!("{path}?dry_run=true"), &sub)
            .await?;
        print_objects(ctx, &objects)?;
        return Ok(ExitCode::SUCCESS);
    }
    let query = format!("?all_traffic={all_traffic}");
    let _: DeploymentRecord = if update {
        client
            .send_json(
                Method::PUT,
                &format!("{}{query}", dep_path(&ep, &dep)),
                &sub,
            )
            .await?
    } else {
        client
            .post(&format!("{}/deployments{query}", ep_path(&ep)), &sub)
            .await?
    };
    if no_wait {
        println!(
            "Deployment {ep}/{dep} accepted; `tug online-deployment show -e {ep} -n {dep}` follows it"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let d = wait_deployment(&client, &ep, &dep).await?;
    print_deployment(ctx, &d)?;
    if d.state == ProvisioningState::Failed {
        bail!(
            "deployment {ep}/{dep} failed: {}",
            d.message.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Kubernetes objects as `kubectl apply -f` reads them: YAML documents, or with `-o json`
/// one `List`.
fn print_objects(ctx: &Context_, objects: &[serde_json::Value]) -> anyhow::Result<()> {
    if ctx.output == output::Format::Json {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for o in objects {
        print!("---\n{}", serde_yaml::to_string(o)?);
    }
    Ok(())
}

fn print_deployment(ctx: &Context_, d: &DeploymentRecord) -> anyhow::Result<()> {
    if output::structured(ctx.output, d)? {
        return Ok(());
    }
    println!("deployment:   {}/{}", d.endpoint, d.name);
    println!("state:        {:?}", d.state);
    if let Some(m) = &d.message {
        println!("message:      {m}");
    }
    if let Some(i) = &d.image {
        println!("image:        {i}");
    }
    for i in &d.instances {
        println!(
            "instance:     {} (http://127.0.0.1:{}/)",
            i.container, i.host_port
        );
    }
    Ok(())
}
