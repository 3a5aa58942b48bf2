//! Building environment images on a Docker engine: a present tag means no build.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use futures_util::StreamExt;
use tokio::sync::Mutex;

use super::{BuildPlan, PlanError, plan};
use crate::run::model::ResolvedEnvironment;

/// How many log lines a failed build reports.
const TAIL_LINES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "base image `{image}` is not on this Docker engine and no registry answered.\n  help: {hint}"
    )]
    BaseMissing { image: String, hint: String },
    #[error(
        "base image `{0}` is not on this Docker engine; a plan does not pull it (running the step does)"
    )]
    BaseNotPulled(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(
        "building the environment image failed at {step}: {message}{help}\n  last build log lines:\n{tail}"
    )]
    BuildFailed {
        step: String,
        message: String,
        /// `\n  help: ...`, or empty.
        help: String,
        tail: String,
    },
    #[error("Docker engine error while {doing}: {source}")]
    Engine {
        doing: &'static str,
        source: bollard::errors::Error,
    },
}

/// What came of ensuring an image.
#[derive(Debug, Clone)]
pub struct Ensured {
    pub tag: String,
    pub hash: String,
    /// False when the tag already existed.
    pub built: bool,
}

/// Builds environment images, at most once per content hash at a time.
#[derive(Clone)]
pub struct Builder {
    docker: Docker,
    in_flight: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
}

/// The hint for a missing base image: tug's own images come from `images/`.
pub fn base_hint(image: &str) -> String {
    if let Some(tag) = image.strip_prefix("tug/python:") {
        let variant = tag.rsplit('-').next().unwrap_or("minimal");
        format!(
            "tug's offline base images are built from Debian packages: run `images/build-base.sh {variant}` (about a minute; see images/README.md)"
        )
    } else if let Some(variant) = image.strip_prefix("tug/curated:") {
        format!(
            "`{image}` is tug's offline stand-in for Azure's curated environments; build it with `images/build-curated.sh {variant}` (Debian packages and PyPI wheels fetched on this host; see images/README.md), or map the curated name to another environment under `curated:` in .tug/config.yaml"
        )
    } else {
        format!(
            "pull it on a connected machine and move it with `docker save` / `docker load`, or name a local stand-in for it in .tug/config.yaml (the job file stays as it is):\n      images:\n        {image}: tug/python:3.11-minimal   # built by images/build-base.sh"
        )
    }
}

impl Builder {
    pub fn new(docker: Docker) -> Builder {
        Builder {
            docker,
            in_flight: Arc::default(),
        }
    }

    /// The content hash `env`'s image has (or would have once built), without building:
    /// what a pipeline step's fingerprint holds for its environment.
    pub async fn env_hash(
        &self,
        env: &ResolvedEnvironment,
        context_tar: Option<&[u8]>,
        pull: bool,
    ) -> Result<String, Error> {
        let base_id = match env {
            ResolvedEnvironment::Image { image, .. } if !pull => {
                let found = self.docker.inspect_image(image).await.ok();
                Some(
                    found
                        .and_then(|i| i.id)
                        .ok_or_else(|| Error::BaseNotPulled(image.to_string()))?,
                )
            }
            ResolvedEnvironment::Image { image, .. } => Some(self.base_image_id(image).await?),
            ResolvedEnvironment::Build { .. } => None,
        };
        Ok(plan(env, base_id.as_deref(), context_tar, "")?.hash)
    }

    /// Makes sure the image for `env` exists, building it if not. `progress` gets
    /// each line of build output.
    pub async fn ensure(
        &self,
        env: &ResolvedEnvironment,
        context_tar: Option<&[u8]>,
        source: &str,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Ensured, Error> {
        let base_id = match env {
            ResolvedEnvironment::Image { image, .. } => Some(self.base_image_id(image).await?),
            ResolvedEnvironment::Build { .. } => None,
        };
        let plan = plan(env, base_id.as_deref(), context_tar, source)?;
        let lock = {
            let mut map = self.in_flight.lock().await;
            map.entry(plan.hash.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if self.docker.inspect_image(&plan.tag).await.is_ok() {
            return Ok(Ensured {
                tag: plan.tag,
                hash: plan.hash,
                built: false,
            });
        }
        self.build(&plan, progress).await?;
        Ok(Ensured {
            tag: plan.tag,
            hash: plan.hash,
            built: true,
        })
    }

    /// Builds `plan` unless its tag exists; true when it built. Concurrent callers for the
    /// same tag build once.
    pub async fn ensure_plan(
        &self,
        plan: &BuildPlan,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<bool, Error> {
        let lock = {
            let mut map = self.in_flight.lock().await;
            map.entry(plan.hash.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if self.docker.inspect_image(&plan.tag).await.is_ok() {
            return Ok(false);
        }
        self.build(plan, progress).await?;
        Ok(true)
    }

    /// The engine's id of an image that exists.
    pub async fn image_id(&self, image: &str) -> Result<String, Error> {
        self.base_image_id(image).await
    }

    /// The id of a base image, pulling it if a registry answers.
    async fn base_image_id(&self, image: &str) -> Result<String, Error> {
        if let Ok(i) = self.docker.inspect_image(image).await {
            return Ok(i.id.unwrap_or_default());
        }
        if !image.starts_with("tug/") {
            let (repo, tag) = split_tag(image);
            let opts = CreateImageOptions {
                from_image: Some(repo.to_string()),
                tag: Some(tag.to_string()),
                ..Default::default()
            };
            let pull = async {
                let mut s = self.docker.create_image(Some(opts), None, None);
                while let Some(item) = s.next().await {
                    item?;
                }
                Ok::<_, bollard::errors::Error>(())
            };
            // A registry that is not there can hang in DNS or TCP; do not wait long.
            if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(60), pull).await
                && let Ok(i) = self.docker.inspect_image(image).await
            {
                return Ok(i.id.unwrap_or_default());
            }
        }
        Err(Error::BaseMissing {
            image: image.to_string(),
            hint: base_hint(image),
        })
    }

    async fn build(
        &self,
        plan: &BuildPlan,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), Error> {
        let opts = BuildImageOptions {
            dockerfile: plan.dockerfile.clone(),
            t: Some(plan.tag.clone()),
            rm: true,
            forcerm: true,
            labels: Some(plan.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let body = bollard::body_full(plan.context.clone().into());
        let mut stream = self.docker.build_image(opts, None, Some(body));
        let mut tail: VecDeque<String> = VecDeque::new();
        let mut step = String::from("the first step");
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(i) => i,
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(failed(step, error, &tail));
                }
                Err(source) => {
                    return Err(Error::Engine {
                        doing: "building an environment image",
                        source,
                    });
                }
            };
            if let Some(text) = info.stream.as_deref() {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    if line.starts_with("Step ") {
                        step = line.to_string();
                    }
                    progress(line);
                    tail.push_back(line.to_string());
                    if tail.len() > TAIL_LINES {
                        tail.pop_front();
                    }
                }
            }
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(failed(step, err, &tail));
            }
        }
        Ok(())
    }
}

fn failed(step: String, message: String, tail: &VecDeque<String>) -> Error {
    Error::BuildFailed {
        help: build_help(&step, &message),
        step,
        message,
        tail: tail
            .iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The fix for a build step that failed for want of a network. Pure.
fn build_help(step: &str, message: &str) -> String {
    let offline = [
        "no such host",
        "dial tcp",
        "registry-1.docker.io",
        "connection refused",
        "i/o timeout",
    ]
    .iter()
    .any(|s| message.contains(s));
    let from = step
        .split_once(" : ")
        .map(|(_, instr)| instr.trim())
        .and_then(|i| i.strip_prefix("FROM ").or_else(|| i.strip_prefix("from ")))
        .and_then(|rest| rest.split_whitespace().next());
    match from {
        Some(image) if offline => format!(
            "\n  help: the Dockerfile's base image `{image}` is not on this engine and no registry answered; pull it on a connected machine and move it with `docker save` / `docker load` (the workspace's `images:` map applies to an environment's `image:`, not to a Dockerfile's FROM)"
        ),
        _ => String::new(),
    }
}

/// `repo:tag` → (`repo`, `tag`), defaulting the tag to `latest` (a `:` in a registry
/// host's port is not a tag).
fn split_tag(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_like_docker() {
        assert_eq!(split_tag("python:3.11"), ("python", "3.11"));
        assert_eq!(split_tag("python"), ("python", "latest"));
        assert_eq!(
            split_tag("localhost:5000/py"),
            ("localhost:5000/py", "latest")
        );
    }

    #[test]
    fn hints_name_the_recipe() {
        assert!(base_hint("tug/python:3.11-sklearn").contains("images/build-base.sh sklearn"));
        assert!(base_hint("python:3.11").contains("docker save"));
    }

    #[test]
    fn a_from_that_cannot_be_pulled_gets_the_offline_fix() {
        let help = build_help(
            "Step 1/9 : FROM python:3.8",
            "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host",
        );
        assert!(
            help.contains("`python:3.8`") && help.contains("docker load"),
            "{help}"
        );
        assert_eq!(
            build_help("Step 3/9 : RUN false", "returned a non-zero code: 1"),
            ""
        );
    }
}
