//! Environment images: what goes into one (a pure plan: Dockerfile, context, content
//! hash, tag) and building it on a Docker engine (`docker`).
//!
//! An environment image holds the base image, the environment's dependencies and
//! tug's Python helper — never the job's code, which is copied in at run start, so
//! editing `train.py` never rebuilds anything.

pub mod docker;

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::run::model::ResolvedEnvironment;
use crate::snapshot::{Entry, tar_bytes};

/// Bumped whenever the way tug assembles images changes, so old tags are not reused.
const RECIPE_VERSION: &str = "tug-env-v1";

/// The repository every environment image is tagged into.
pub const IMAGE_REPOSITORY: &str = "tug/env";

/// Label keys tug puts on environment images.
pub mod labels {
    pub const ENV_HASH: &str = "tug.env.hash";
    pub const SOURCE: &str = "org.opencontainers.image.source";
    pub const BASE: &str = "org.opencontainers.image.base.name";
    pub const TITLE: &str = "org.opencontainers.image.title";
}

/// The dependency-free Python helper (`import tug`, `from azureml.core import Run`),
/// compiled into the binary so a tug install is one file.
pub const HELPER_FILES: &[(&str, &[u8])] = &[
    (
        "tug/__init__.py",
        include_bytes!("../../images/python/tug/__init__.py"),
    ),
    (
        "azureml/__init__.py",
        include_bytes!("../../images/python/azureml/__init__.py"),
    ),
    (
        "azureml/core/__init__.py",
        include_bytes!("../../images/python/azureml/core/__init__.py"),
    ),
    (
        "azureml/core/run.py",
        include_bytes!("../../images/python/azureml/core/run.py"),
    ),
    // The stdlib MLflow fallback: `sitecustomize` appends `_tug_fallback` to the end of
    // `sys.path`, so an installed mlflow always comes first.
    (
        "sitecustomize.py",
        include_bytes!("../../images/python/sitecustomize.py"),
    ),
    (
        "_tug_fallback/mlflow/__init__.py",
        include_bytes!("../../images/python/_tug_fallback/mlflow/__init__.py"),
    ),
    (
        "_tug_fallback/mlflow/sklearn.py",
        include_bytes!("../../images/python/_tug_fallback/mlflow/sklearn.py"),
    ),
];

/// Where the helper lives inside images; on `PYTHONPATH`.
pub const HELPER_DIR: &str = "/opt/tug/python";
/// The virtual environment pip dependencies go into when the base has no conda.
pub const VENV_DIR: &str = "/opt/tug/venv";

/// Everything needed to build one environment image.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// Full sha256 of everything that determines the image.
    pub hash: String,
    /// `tug/env:<hash prefix>`.
    pub tag: String,
    /// The build context as a tar.
    pub context: Vec<u8>,
    /// Dockerfile path inside the context.
    pub dockerfile: String,
    pub labels: BTreeMap<String, String>,
}

/// Shell run in the image to install a conda file: conda or mamba when the base has
/// one, else pip in a virtual environment that still sees the base's packages (so a
/// Debian-packaged scikit-learn satisfies `scikit-learn` without a download).
const INSTALL_SCRIPT: &str = r#"set -eu
cd /opt/tug/env-spec
if command -v mamba >/dev/null 2>&1; then
  mamba env update -n base -f conda.yml
elif command -v conda >/dev/null 2>&1; then
  conda env update -n base -f conda.yml
else
  python3 -m venv --system-site-packages /opt/tug/venv
  if [ -s requirements.txt ]; then
    /opt/tug/venv/bin/pip install --no-input --disable-pip-version-check --no-cache-dir -r requirements.txt
  fi
fi
"#;

fn helper_entries(prefix: &str) -> Vec<Entry> {
    let mut dirs = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (path, data) in HELPER_FILES {
        let mut p = std::path::Path::new(path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(format!("{prefix}/{}", d.display()));
            p = d.parent();
        }
        out.push(Entry {
            path: format!("{prefix}/{path}"),
            data: Some(data.to_vec()),
            executable: false,
        });
    }
    out.extend(dirs.into_iter().map(|path| Entry {
        path,
        data: None,
        executable: false,
    }));
    out.push(Entry {
        path: prefix.to_string(),
        data: None,
        executable: false,
    });
    out
}

const HELPER_CONTEXT_DIR: &str = ".tug-helper";

fn helper_dockerfile_tail() -> String {
    format!(
        "\n# tug: metrics helper and runtime settings (added by tug)\n\
         COPY {HELPER_CONTEXT_DIR}/ {HELPER_DIR}/\n\
         ENV PYTHONPATH={HELPER_DIR} PYTHONUNBUFFERED=1 PATH={VENV_DIR}/bin:$PATH\n"
    )
}

/// Plans the image for `env` on top of a base whose image id is `base_id` (for
/// `Image` environments; a rebuilt base gives a new hash). `context_tar` is the
/// uploaded build context for `Build` environments.
pub fn plan(
    env: &ResolvedEnvironment,
    base_id: Option<&str>,
    context_tar: Option<&[u8]>,
    source: &str,
) -> Result<BuildPlan, PlanError> {
    let mut h = Sha256::new();
    h.update(RECIPE_VERSION);
    let mut labels = BTreeMap::new();
    labels.insert(labels::SOURCE.to_string(), source.to_string());
    labels.insert(labels::TITLE.to_string(), "tug environment".to_string());
    let (context, dockerfile) = match env {
        ResolvedEnvironment::Image {
            image,
            conda_file,
            pip_requirements,
        } => {
            // The base's id: a rebuilt base under the same name is a new image.
            h.update(base_id.unwrap_or(""));
            labels.insert(labels::BASE.to_string(), image.clone());
            let mut entries = helper_entries(HELPER_CONTEXT_DIR);
            let mut dockerfile = format!("FROM {image}\nUSER root\n");
            if let Some(conda) = conda_file {
                let reqs = pip_requirements.join("\n");
                entries.push(Entry {
                    path: "env-spec".into(),
                    data: None,
                    executable: false,
                });
                for (name, text) in [
                    ("conda.yml", conda.clone()),
                    ("requirements.txt", reqs),
                    ("install.sh", INSTALL_SCRIPT.to_string()),
                ] {
                    entries.push(Entry {
                        path: format!("env-spec/{name}"),
                        data: Some(text.into_bytes()),
                        executable: name == "install.sh",
                    });
                }
                // Dependencies before the helper: they change least often.
                dockerfile.push_str(
                    "COPY env-spec/ /opt/tug/env-spec/\nRUN [\"/bin/sh\", \"/opt/tug/env-spec/install.sh\"]\n",
                );
            }
            // Azure's images answer to `python`; Debian's only to `python3`.
            dockerfile.push_str(
                "RUN command -v python >/dev/null || ! command -v python3 >/dev/null \\\n    || ln -s \"$(command -v python3)\" /usr/local/bin/python\n",
            );
            dockerfile.push_str(&helper_dockerfile_tail());
            entries.push(Entry {
                path: "Dockerfile".into(),
                data: Some(dockerfile.into_bytes()),
                executable: false,
            });
            (tar_bytes(&entries, "", 0, 0), "Dockerfile".to_string())
        }
        ResolvedEnvironment::Build {
            dockerfile_path, ..
        } => {
            let tar = context_tar.ok_or(PlanError::MissingContext)?;
            (
                append_helper(tar, dockerfile_path)?,
                dockerfile_path.clone(),
            )
        }
    };
    // The context holds the Dockerfile, the helper and the dependency files: hashing
    // it (it is deterministic) covers every change to how tug assembles images.
    h.update(b"\0context\0");
    h.update(Sha256::digest(&context));
    h.update(&dockerfile);
    let hash = crate::workspace::hex(&h.finalize());
    labels.insert(labels::ENV_HASH.to_string(), hash.clone());
    Ok(BuildPlan {
        tag: format!("{IMAGE_REPOSITORY}:{}", &hash[..24]),
        hash,
        context,
        dockerfile,
        labels,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the build context snapshot is missing from the workspace")]
    MissingContext,
    #[error(
        "the build context has no `{0}`; set `build.dockerfile_path` to the Dockerfile's path inside the context"
    )]
    NoDockerfile(String),
    #[error("the build context is not a readable tar: {0}")]
    BadContext(std::io::Error),
}

/// Rewrites a user's build context: the helper added and its lines appended to their
/// Dockerfile (they apply to the last stage, i.e. the image that runs).
fn append_helper(tar: &[u8], dockerfile_path: &str) -> Result<Vec<u8>, PlanError> {
    let mut entries = crate::snapshot::entries_from_tar(tar).map_err(PlanError::BadContext)?;
    let wanted = dockerfile_path.trim_start_matches("./");
    let dockerfile = entries
        .iter_mut()
        .find(|e| e.path == wanted && e.data.is_some())
        .and_then(|e| e.data.as_mut())
        .ok_or_else(|| PlanError::NoDockerfile(dockerfile_path.to_string()))?;
    if !dockerfile.ends_with(b"\n") {
        dockerfile.push(b'\n');
    }
    dockerfile.extend_from_slice(helper_dockerfile_tail().as_bytes());
    entries.extend(helper_entries(HELPER_CONTEXT_DIR));
    Ok(tar_bytes(&entries, "", 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_env(conda: Option<&str>) -> ResolvedEnvironment {
        ResolvedEnvironment::Image {
            image: "tug/python:3.11-sklearn".into(),
            conda_file: conda.map(str::to_string),
            pip_requirements: conda
                .map(|_| vec!["scikit-learn".into()])
                .unwrap_or_default(),
        }
    }

    fn files(tar: &[u8]) -> BTreeMap<String, String> {
        let mut ar = tar::Archive::new(tar);
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let p = e.path().unwrap().to_string_lossy().into_owned();
                let mut s = String::new();
                std::io::Read::read_to_string(&mut e, &mut s).unwrap();
                (p, s)
            })
            .collect()
    }

    #[test]
    fn same_environment_same_tag_and_base_change_changes_it() {
        let a = plan(&image_env(Some("deps")), Some("sha256:1"), None, "x").unwrap();
        let b = plan(&image_env(Some("deps")), Some("sha256:1"), None, "other").unwrap();
        assert_eq!(a.tag, b.tag, "the source label does not change the image");
        assert_eq!(a.context, b.context);
        let c = plan(&image_env(Some("deps")), Some("sha256:2"), None, "x").unwrap();
        assert_ne!(a.tag, c.tag);
        let d = plan(&image_env(Some("deps2")), Some("sha256:1"), None, "x").unwrap();
        assert_ne!(a.tag, d.tag);
        assert!(a.tag.starts_with("tug/env:"));
        assert_eq!(a.labels[labels::ENV_HASH], a.hash);
    }

    #[test]
    fn dependencies_come_before_helper_and_no_conda_means_no_install() {
        let p = plan(&image_env(Some("deps")), None, None, "x").unwrap();
        let f = files(&p.context);
        let df = &f["Dockerfile"];
        let install = df.find("install.sh").unwrap();
        let helper = df.find(HELPER_CONTEXT_DIR).unwrap();
        assert!(install < helper);
        assert!(f.contains_key(".tug-helper/tug/__init__.py"));
        assert_eq!(f["env-spec/requirements.txt"], "scikit-learn");
        let bare = plan(&image_env(None), None, None, "x").unwrap();
        assert!(!files(&bare.context)["Dockerfile"].contains("install.sh"));
    }

    #[test]
    fn user_dockerfile_gets_helper_appended() {
        let ctx = tar_bytes(
            &[
                Entry {
                    path: "docker/Dockerfile".into(),
                    data: Some(b"FROM base\nRUN true".to_vec()),
                    executable: false,
                },
                Entry {
                    path: "docker".into(),
                    data: None,
                    executable: false,
                },
            ],
            "",
            0,
            0,
        );
        let env = ResolvedEnvironment::Build {
            context_snapshot: "abc".into(),
            dockerfile_path: "docker/Dockerfile".into(),
        };
        let p = plan(&env, None, Some(&ctx), "x").unwrap();
        let f = files(&p.context);
        assert!(f["docker/Dockerfile"].starts_with("FROM base\nRUN true\n"));
        assert!(f["docker/Dockerfile"].contains("COPY .tug-helper/"));
        let missing = ResolvedEnvironment::Build {
            context_snapshot: "abc".into(),
            dockerfile_path: "Dockerfile".into(),
        };
        assert!(matches!(
            plan(&missing, None, Some(&ctx), "x"),
            Err(PlanError::NoDockerfile(_))
        ));
    }
}
