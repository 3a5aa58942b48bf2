//! Where MLflow artifacts live. A run's artifact root (`mlflow-artifacts:/<exp>/<run>/artifacts`)
//! is the run's folder in the workspace, the same folder `./outputs` and `./logs` are
//! collected into, so `tug job download` and `tug model create --path runs:/<run>/model`
//! see what the client logged. A logged model with no run keeps its files under
//! `artifacts/mlflow-models/<model-id>`.

use super::MlflowError;

/// What an artifact request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactTarget {
    /// A path (possibly empty: the root) inside a run's folder.
    Run { run_id: String, path: String },
    /// A path inside a run-less logged model's folder.
    Model { model_id: String, path: String },
}

/// Top-level folders of a run that tug itself writes (its log copies); MLflow uploads
/// may not land there.
pub fn reserved(first_step: &str) -> bool {
    matches!(first_step, "user_logs" | "system_logs")
}

/// Checks a relative artifact path: no absolute paths, `..`, empty or `.` steps, or NUL.
pub fn clean_path(path: &str) -> Result<String, MlflowError> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for step in trimmed.split('/') {
        if step.is_empty() || step == "." || step == ".." || step.contains('\0') {
            return Err(MlflowError::invalid(format!(
                "invalid artifact path '{path}': it must be relative, with no '.', '..' or empty steps"
            )));
        }
    }
    Ok(trimmed.to_string())
}

/// Reads `<exp>/<run>/artifacts[/<path>]` or `<exp>/models/<id>/artifacts[/<path>]`.
pub fn parse(path: &str) -> Result<ArtifactTarget, MlflowError> {
    let clean = clean_path(path)?;
    let mut parts = clean.splitn(4, '/');
    let (exp, owner, artifacts) = (parts.next(), parts.next(), parts.next());
    let rest = parts.next().unwrap_or("");
    let not_ours = || {
        MlflowError::missing(format!(
            "artifact path '{path}' is not under a run (`<experiment>/<run>/artifacts/...`) or a logged model (`<experiment>/models/<id>/artifacts/...`)"
        ))
    };
    let exp = exp.ok_or_else(not_ours)?;
    if exp.parse::<i64>().is_err() {
        return Err(not_ours());
    }
    match (owner, artifacts) {
        (Some("models"), Some(id)) => {
            let mut rest = rest.splitn(2, '/');
            if rest.next() != Some("artifacts") {
                return Err(not_ours());
            }
            Ok(ArtifactTarget::Model {
                model_id: id.to_string(),
                path: rest.next().unwrap_or("").to_string(),
            })
        }
        (Some(run), Some("artifacts")) if crate::run::model::valid_run_id(run) => {
            Ok(ArtifactTarget::Run {
                run_id: run.to_string(),
                path: rest.to_string(),
            })
        }
        _ => Err(not_ours()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_and_model_paths() {
        assert_eq!(
            parse("1/brave_fig_1/artifacts/model/MLmodel").unwrap(),
            ArtifactTarget::Run {
                run_id: "brave_fig_1".into(),
                path: "model/MLmodel".into()
            }
        );
        assert_eq!(
            parse("/1/r/artifacts").unwrap(),
            ArtifactTarget::Run {
                run_id: "r".into(),
                path: "".into()
            }
        );
        assert_eq!(
            parse("2/models/m-abc/artifacts/model.pkl").unwrap(),
            ArtifactTarget::Model {
                model_id: "m-abc".into(),
                path: "model.pkl".into()
            }
        );
        for bad in [
            "1/r/artifacts/../../etc/passwd",
            "1/r/artifacts/a//b",
            "x/r/artifacts",
            "1/r/other",
            "1/models/m/x",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
