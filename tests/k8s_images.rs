//! Images reaching kind nodes through this machine's Docker engine, as `kind load
//! docker-image` does, without kind: a node here is a container labelled
//! `io.x-k8s.kind.cluster=<name>` running the host's own containerd (Debian's, the one
//! the Docker engine runs on), as kind's node image does. No cluster is needed.

mod common;

use std::process::Command;

use common::MINIMAL;
use tug::compute::config::ImageDelivery;
use tug::compute::kubernetes::images::{deliver, has_image_command};

struct Node {
    name: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A kind-like node image: the minimal base with the host's containerd and ctr, the CRI
/// plugin on the `native` snapshotter (overlay does not nest on this engine's storage).
fn node_image() -> String {
    let tag = "tug-test/kind-node:containerd";
    let ctx = tempfile::tempdir().unwrap();
    for bin in ["containerd", "ctr"] {
        std::fs::copy(format!("/usr/bin/{bin}"), ctx.path().join(bin)).unwrap();
    }
    std::fs::write(
        ctx.path().join("config.toml"),
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"native\"\n",
    )
    .unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {MINIMAL}\nUSER root\nCOPY containerd ctr /usr/local/bin/\nCOPY config.toml /etc/containerd/config.toml\nENTRYPOINT [\"containerd\"]\n"
        ),
    )
    .unwrap();
    docker(&["build", "-q", "-t", tag, &ctx.path().display().to_string()]);
    tag.to_string()
}

#[test]
fn a_kind_node_gets_the_image_once_and_a_missing_cluster_is_named() {
    common::require_image(MINIMAL);
    let image = node_image();
    let cluster = format!("tug-test-{}", std::process::id());
    let node = Node {
        name: format!("{cluster}-control-plane"),
    };
    docker(&[
        "run",
        "-d",
        "--cap-add",
        "SYS_ADMIN",
        "--name",
        &node.name,
        "--label",
        &format!("io.x-k8s.kind.cluster={cluster}"),
        &image,
    ]);
    // containerd answers once its socket is up.
    let started = std::time::Instant::now();
    while Command::new("docker")
        .args(["exec", &node.name, "ctr", "version"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        assert!(started.elapsed().as_secs() < 30, "containerd did not start");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = bollard::Docker::connect_with_defaults().unwrap();
    let first = rt
        .block_on(deliver(&engine, ImageDelivery::Kind, &cluster, MINIMAL))
        .unwrap();
    assert_eq!(first.loaded, std::slice::from_ref(&node.name), "{first:?}");
    let mut listed = vec!["exec".to_string(), node.name.clone()];
    listed.extend(has_image_command(ImageDelivery::Kind, MINIMAL));
    let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
    let shown = docker(&listed);
    assert!(
        shown.contains("docker.io/tug/python:3.11-minimal"),
        "the node's containerd has the image: {shown}"
    );
    let again = rt
        .block_on(deliver(&engine, ImageDelivery::Kind, &cluster, MINIMAL))
        .unwrap();
    assert_eq!(
        again.already_there,
        std::slice::from_ref(&node.name),
        "{again:?}"
    );
    assert!(again.loaded.is_empty());

    let missing = rt
        .block_on(deliver(
            &engine,
            ImageDelivery::Kind,
            "no-such-cluster",
            MINIMAL,
        ))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("io.x-k8s.kind.cluster=no-such-cluster"),
        "{missing}"
    );
}
