//! Where a model's files are (`path:` of a model or of a deployment's inline model).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::Marked;
use super::fields::has_scheme;
use super::io::valid_io_name;

/// Where a model's files are (`path:` of a model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPath {
    /// A file or folder on this machine. `given` is the text as written; `path` is it without
    /// a `file:` prefix, joined to the YAML file's directory (no I/O: it need not exist).
    Local { given: String, path: PathBuf },
    /// `runs:/<run-id>/<path>`: an artifact of a run (MLflow's form).
    RunArtifact { run_id: String, path: String },
    /// `azureml://jobs/<run-id>/outputs/artifacts/paths/<path>`: an artifact of a job.
    JobArtifact { job: String, path: String },
    /// `azureml://jobs/<run-id>/outputs/<output>[/paths/<path>]`: a named output of a job.
    JobOutput {
        job: String,
        output: String,
        path: Option<String>,
    },
    /// `azureml://datastores/<datastore>/paths/<path>` (or the long form with
    /// `subscriptions/.../workspaces/...` in front): cloud storage, not available locally.
    Datastore { datastore: String, path: String },
    /// An `http(s)://`, `wasbs://`, `abfss://` or `adl://` URL: not available locally.
    Url(String),
}

pub(crate) const PATH_FORMS: &str = "a local file or folder (relative to this file, optionally with `file:`), `runs:/<run-id>/<path>`, `azureml://jobs/<run-id>/outputs/artifacts/paths/<path>`, `azureml://jobs/<run-id>/outputs/<output>`, `azureml://datastores/<datastore>/paths/<path>` or an `https://` URL";

impl ModelPath {
    /// A path on this machine.
    pub fn is_local(&self) -> bool {
        matches!(self, ModelPath::Local { .. })
    }

    /// Whether tug can find the files itself: local paths and the outputs and artifacts of
    /// its own runs. Datastore URIs and URLs are read, but the caller refuses them.
    pub fn is_available_locally(&self) -> bool {
        !matches!(self, ModelPath::Datastore { .. } | ModelPath::Url(_))
    }

    /// Join a relative local path to `base` (the YAML file's directory). Pure.
    pub fn resolve(&mut self, base: &Path) {
        if let ModelPath::Local { path, .. } = self {
            *path = base.join(&*path);
        }
    }
}

/// Parse a model path given on its own (e.g. `--path` on the command line): local paths are
/// joined to `base_dir`. The error says what is wrong and, after `help:`, what to write.
pub fn parse_model_path(s: &str, base_dir: &Path) -> Result<ModelPath, String> {
    let mut path = classify_path(s).map_err(|m| {
        format!(
            "{}\n  help: {}",
            m.message.replace("{field}", "path"),
            m.help
        )
    })?;
    path.resolve(base_dir);
    Ok(path)
}

fn valid_run_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// Classify a `path:` value; a local path stays relative until [`ModelPath::resolve`].
pub(crate) fn classify_path(text: &str) -> Result<ModelPath, Marked> {
    let text = text.trim();
    let bad = |why: &str| {
        Marked::invalid(
            format!("`{text}` is not a model path for `{{field}}`: {why}"),
            format!("write {PATH_FORMS}"),
        )
    };
    if text.is_empty() {
        return Err(Marked::invalid(
            "`{field}` is empty",
            format!("give where the model's files are: {PATH_FORMS}"),
        ));
    }
    if let Some(rest) = text.strip_prefix("runs:/") {
        return match rest.split_once('/') {
            Some((run, path)) if valid_run_id(run) && !path.trim_matches('/').is_empty() => {
                Ok(ModelPath::RunArtifact {
                    run_id: run.to_string(),
                    path: path.to_string(),
                })
            }
            _ => Err(bad(
                "expected `runs:/<run-id>/<path>` with a run id of letters, digits, `-` and `_`, e.g. `runs:/3f2a9c/model`",
            )),
        };
    }
    if let Some(rest) = text.strip_prefix("azureml://") {
        return classify_azureml(rest).map_err(|why| bad(&why));
    }
    if text.starts_with("azureml:") {
        return Err(Marked::invalid(
            format!("`{{field}}: {text}` names a registered asset, not where a model's files are"),
            "give the files' location (a local folder, `runs:/...` or `azureml://jobs/...`); to deploy a registered model write `model: azureml:<name>:<version>` in the deployment",
        ));
    }
    let lower = text.to_ascii_lowercase();
    let remote = [
        "http://", "https://", "wasbs://", "wasb://", "abfss://", "abfs://", "adl://",
    ];
    if let Some(scheme) = remote.iter().find(|s| lower.starts_with(**s)) {
        if text.len() == scheme.len() {
            return Err(bad("the URL has nothing after the scheme"));
        }
        return Ok(ModelPath::Url(text.to_string()));
    }
    let local = if let Some(rest) = text.strip_prefix("file://") {
        rest
    } else if let Some(rest) = text.strip_prefix("file:") {
        rest
    } else if has_scheme(text) {
        let scheme = text.split(':').next().unwrap_or_default();
        return Err(Marked::invalid(
            format!(
                "`{text}` is not a model path for `{{field}}`: tug does not know the scheme `{scheme}:`"
            ),
            if text.contains("://") {
                format!("write {PATH_FORMS}")
            } else {
                format!("write {PATH_FORMS} (for a local name containing `:`, write `file:{text}`)")
            },
        ));
    } else {
        text
    };
    if local.is_empty() {
        return Err(bad("nothing follows `file:`"));
    }
    Ok(ModelPath::Local {
        given: text.to_string(),
        path: PathBuf::from(local),
    })
}

/// The part after `azureml://`; the error is the reason.
fn classify_azureml(rest: &str) -> Result<ModelPath, String> {
    let parts: Vec<&str> = rest.split('/').collect();
    if let ["jobs", job, "outputs", output, tail @ ..] = parts.as_slice() {
        if !valid_run_id(job) {
            return Err("the run id may contain letters, digits, `-` and `_` only".into());
        }
        if !valid_io_name(output) {
            return Err(format!(
                "`{output}` is not an output name (letters, digits and `_`, not starting with a digit)"
            ));
        }
        let path = match tail {
            [] | [""] => None,
            ["paths", p @ ..] if !p.join("/").trim_matches('/').is_empty() => Some(p.join("/")),
            ["paths", ..] => return Err("nothing follows `/paths/`".into()),
            _ => return Err("expected `/paths/<path>` after the output name".into()),
        };
        return match (*output, path) {
            ("artifacts", Some(path)) => Ok(ModelPath::JobArtifact {
                job: job.to_string(),
                path,
            }),
            ("artifacts", None) => Err(
                "name the folder among the artifacts: `azureml://jobs/<run-id>/outputs/artifacts/paths/<path>`".into(),
            ),
            (output, path) => Ok(ModelPath::JobOutput {
                job: job.to_string(),
                output: output.to_string(),
                path,
            }),
        };
    }
    if parts.first() == Some(&"jobs") {
        return Err("expected `azureml://jobs/<run-id>/outputs/<output>[/paths/<path>]`".into());
    }
    if let Some(i) = parts.iter().position(|p| *p == "datastores") {
        let long_form = i > 0 && parts[0] == "subscriptions";
        return match &parts[i + 1..] {
            [ds, "paths", p @ ..]
                if (i == 0 || long_form)
                    && !ds.is_empty()
                    && !p.join("/").trim_matches('/').is_empty() =>
            {
                Ok(ModelPath::Datastore {
                    datastore: ds.to_string(),
                    path: p.join("/"),
                })
            }
            _ => Err("expected `azureml://datastores/<datastore>/paths/<path>`".into()),
        };
    }
    if parts.first() == Some(&"registries") {
        return Err(
            "a registry URI names a registered asset, not files; to deploy it write `model: azureml://registries/<registry>/models/<name>/versions/<version>` in the deployment".into(),
        );
    }
    Err("unknown kind of `azureml://` URI".into())
}

impl fmt::Display for ModelPath {
    /// As written (local paths) or in canonical URI form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelPath::Local { given, .. } => f.write_str(given),
            ModelPath::RunArtifact { run_id, path } => write!(f, "runs:/{run_id}/{path}"),
            ModelPath::JobArtifact { job, path } => {
                write!(f, "azureml://jobs/{job}/outputs/artifacts/paths/{path}")
            }
            ModelPath::JobOutput { job, output, path } => {
                write!(f, "azureml://jobs/{job}/outputs/{output}")?;
                match path {
                    Some(p) => write!(f, "/paths/{p}"),
                    None => Ok(()),
                }
            }
            ModelPath::Datastore { datastore, path } => {
                write!(f, "azureml://datastores/{datastore}/paths/{path}")
            }
            ModelPath::Url(url) => f.write_str(url),
        }
    }
}

impl Serialize for ModelPath {
    /// The resolved local path when there is one (so a stored spec stays usable), else the URI.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ModelPath::Local { path, .. } => s.serialize_str(&path.to_string_lossy()),
            other => s.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for ModelPath {
    /// Through a visitor, so that the error carries the field's path and position.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ModelPath;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ModelPath, E> {
                classify_path(v).map_err(Marked::into_de)
            }
        }
        d.deserialize_str(V)
    }
}
