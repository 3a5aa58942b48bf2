//! Getting images built on this machine onto a cluster's nodes, per the compute target's
//! `images:` setting, through this machine's Docker engine only (no kind or minikube
//! binary needed):
//!
//! - `local`: the nodes use this engine; nothing to do.
//! - `kind`: each node is a container labelled `io.x-k8s.kind.cluster=<cluster>` running
//!   containerd; the image is streamed from `docker save` into `ctr images import` in the
//!   node (as `kind load docker-image` does), with the snapshotter the node's containerd
//!   is configured with, and skipped on nodes that already have the tag.
//! - `minikube`: the node is a container labelled `name.minikube.sigs.k8s.io=<profile>`
//!   running its own Docker engine; the image is streamed into `docker load` there.
//!
//! Tags are content hashes, so a node that has the tag has the content. The commands
//! and parsing are pure; [`deliver`] does the I/O.

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::ListContainersOptions;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::compute::Error;
use crate::compute::config::ImageDelivery;

pub const KIND_LABEL: &str = "io.x-k8s.kind.cluster";
pub const MINIKUBE_LABEL: &str = "name.minikube.sigs.k8s.io";

/// The label that finds the cluster's node containers, for deliveries that load images.
pub fn node_label(delivery: ImageDelivery, cluster: &str) -> Option<String> {
    match delivery {
        ImageDelivery::Kind => Some(format!("{KIND_LABEL}={cluster}")),
        ImageDelivery::Minikube => Some(format!("{MINIKUBE_LABEL}={cluster}")),
        ImageDelivery::Local | ImageDelivery::Registry => None,
    }
}

/// How containerd names an image given as Docker does (`tug/env:x` is
/// `docker.io/tug/env:x`).
pub fn containerd_ref(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        image.to_string()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    }
}

/// The snapshotter of the CRI plugin in `containerd config dump` (kind's nodes use
/// `overlayfs`, or `native`/`fuse-overlayfs` where overlay is unavailable).
pub fn cri_snapshotter(config_dump: &str) -> Option<String> {
    let mut in_cri = false;
    for line in config_dump.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_cri = t.trim_matches(|c| c == '[' || c == ']')
                == r#"plugins."io.containerd.grpc.v1.cri".containerd"#;
            continue;
        }
        if in_cri && let Some(v) = t.strip_prefix("snapshotter") {
            let v = v.trim().strip_prefix('=')?.trim().trim_matches('"');
            return (!v.is_empty()).then(|| v.to_string());
        }
    }
    None
}

pub fn has_image_command(delivery: ImageDelivery, image: &str) -> Vec<String> {
    match delivery {
        ImageDelivery::Minikube => vec![
            "docker".into(),
            "image".into(),
            "inspect".into(),
            image.into(),
        ],
        _ => vec![
            "ctr".into(),
            "--namespace=k8s.io".into(),
            "images".into(),
            "ls".into(),
            "-q".into(),
            format!("name=={}", containerd_ref(image)),
        ],
    }
}

pub fn load_command(delivery: ImageDelivery, snapshotter: Option<&str>) -> Vec<String> {
    match delivery {
        ImageDelivery::Minikube => vec!["docker".into(), "load".into(), "-q".into()],
        _ => {
            let mut c: Vec<String> = [
                "ctr",
                "--namespace=k8s.io",
                "images",
                "import",
                "--all-platforms",
                "--digests",
            ]
            .map(String::from)
            .to_vec();
            if let Some(s) = snapshotter {
                c.push(format!("--snapshotter={s}"));
            }
            c.push("-".into());
            c
        }
    }
}

/// What [`deliver`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    pub loaded: Vec<String>,
    pub already_there: Vec<String>,
}

fn engine(doing: String) -> impl FnOnce(bollard::errors::Error) -> Error {
    crate::compute::docker::engine(doing)
}

/// Runs `cmd` in `container`, feeding `stdin` from a stream of chunks; returns
/// (exit code, output).
async fn exec(
    docker: &Docker,
    container: &str,
    cmd: Vec<String>,
    stdin: Option<
        futures_util::stream::BoxStream<'static, Result<bytes::Bytes, bollard::errors::Error>>,
    >,
) -> Result<(i64, String), Error> {
    let doing = format!("running `{}` in node {container}", cmd.join(" "));
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd),
                attach_stdin: Some(stdin.is_some()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(engine(doing.clone()))?;
    let started = docker
        .start_exec(&created.id, None)
        .await
        .map_err(engine(doing.clone()))?;
    let mut text = String::new();
    if let StartExecResults::Attached {
        mut output,
        mut input,
    } = started
    {
        let feed = async {
            let mut fed = Ok::<_, Error>(());
            if let Some(mut s) = stdin {
                while let Some(chunk) = s.next().await {
                    let written = match chunk {
                        Ok(chunk) => input.write_all(&chunk).await.map_err(|e| Error::Target {
                            target: "Docker engine".into(),
                            doing: doing.clone(),
                            detail: e.to_string(),
                            unreachable: false,
                        }),
                        Err(e) => Err(engine(format!("{doing}: reading the image"))(e)),
                    };
                    if let Err(e) = written {
                        fed = Err(e);
                        break;
                    }
                }
            }
            // Closed on every path: a half-fed import must see its end, not wait forever.
            let _ = input.shutdown().await;
            fed
        };
        let read = async {
            while let Some(item) = output.next().await {
                if let Ok(o) = item {
                    text.push_str(&String::from_utf8_lossy(&o.into_bytes()));
                }
            }
        };
        let (fed, ()) = tokio::join!(feed, read);
        fed?;
    }
    let code = docker
        .inspect_exec(&created.id)
        .await
        .map_err(engine(doing))?
        .exit_code
        .unwrap_or(-1);
    Ok((code, text))
}

/// Loads `image` onto every node of the cluster that lacks it.
pub async fn deliver(
    docker: &Docker,
    delivery: ImageDelivery,
    cluster: &str,
    image: &str,
) -> Result<Delivered, Error> {
    let Some(label) = node_label(delivery, cluster) else {
        return Ok(Delivered::default());
    };
    let opts = ListContainersOptions {
        filters: Some(std::collections::HashMap::from([(
            "label".to_string(),
            vec![label.clone()],
        )])),
        ..Default::default()
    };
    let nodes: Vec<String> = docker
        .list_containers(Some(opts))
        .await
        .map_err(engine(format!("listing the node containers ({label})")))?
        .into_iter()
        // An HA kind cluster's load balancer carries the cluster label but is no node.
        .filter(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get("io.x-k8s.kind.role"))
                .is_none_or(|r| r != "external-load-balancer")
        })
        .filter_map(|c| {
            c.names?
                .first()
                .map(|n| n.trim_start_matches('/').to_string())
        })
        .collect();
    if nodes.is_empty() {
        return Err(Error::Unsupported(format!(
            "no running node container has the label {label} on this machine's Docker engine; is the {} cluster `{cluster}` running here? (`images: {}` loads images through this engine)",
            delivery.as_str(),
            delivery.as_str()
        )));
    }
    let mut done = Delivered::default();
    for node in nodes {
        let (code, listed) = exec(docker, &node, has_image_command(delivery, image), None).await?;
        let present = match delivery {
            ImageDelivery::Minikube => code == 0,
            _ => code == 0 && !listed.trim().is_empty(),
        };
        if present {
            done.already_there.push(node);
            continue;
        }
        let snapshotter = if delivery == ImageDelivery::Kind {
            let (_, dump) = exec(
                docker,
                &node,
                vec!["containerd".into(), "config".into(), "dump".into()],
                None,
            )
            .await?;
            cri_snapshotter(&dump)
        } else {
            None
        };
        let save = docker.export_image(image).boxed();
        let (code, out) = exec(
            docker,
            &node,
            load_command(delivery, snapshotter.as_deref()),
            Some(save),
        )
        .await?;
        if code != 0 {
            return Err(Error::Unsupported(format!(
                "loading {image} into node {node} failed (exit {code}): {}",
                out.trim()
            )));
        }
        done.loaded.push(node);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_named_as_containerd_names_them() {
        assert_eq!(containerd_ref("tug/env:ab"), "docker.io/tug/env:ab");
        assert_eq!(containerd_ref("python:3"), "docker.io/library/python:3");
        assert_eq!(
            containerd_ref("registry.local:5000/d/b:1"),
            "registry.local:5000/d/b:1"
        );
        assert_eq!(containerd_ref("localhost/x:1"), "localhost/x:1");
    }

    #[test]
    fn the_cri_snapshotter_is_read_from_the_config_dump() {
        let dump = r#"
[plugins]
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
  [plugins."io.containerd.snapshotter.v1.native"]
    snapshotter = "other"
"#;
        assert_eq!(cri_snapshotter(dump).as_deref(), Some("overlayfs"));
        assert_eq!(cri_snapshotter("[plugins]\n"), None);
    }

    #[test]
    fn kind_imports_into_the_cri_namespace_with_its_snapshotter() {
        let c = load_command(ImageDelivery::Kind, Some("native"));
        assert_eq!(c[..4], ["ctr", "--namespace=k8s.io", "images", "import"]);
        assert!(c.contains(&"--snapshotter=native".to_string()));
        assert_eq!(c.last().unwrap(), "-");
        assert_eq!(
            load_command(ImageDelivery::Minikube, None),
            ["docker", "load", "-q"]
        );
        assert_eq!(
            node_label(ImageDelivery::Kind, "tug").as_deref(),
            Some("io.x-k8s.kind.cluster=tug")
        );
        assert_eq!(node_label(ImageDelivery::Local, "tug"), None);
    }
}
