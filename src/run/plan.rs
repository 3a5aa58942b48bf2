//! Pure decisions about one run: the container it gets and what its end means.

use std::collections::BTreeMap;

use crate::compute::{HostMount, Limits, RunSpec};
use crate::run::model::{
    InputBinding, InputMode, JobSubmission, ResolvedEnvironment, RunStatus, paths,
};
use crate::snapshot::Entry;

/// The uid:gid tug's environment images run jobs as.
pub const RUN_UID: u64 = 1000;

/// How many log lines a failed run's status carries.
pub const FAILURE_TAIL_LINES: usize = 20;

/// Inputs for `container_spec` that the server looked up.
pub struct SpecInputs<'a> {
    pub workspace_id: &'a str,
    pub run_id: &'a str,
    pub experiment: &'a str,
    pub image: &'a str,
    pub log_nonce: &'a str,
    /// The code snapshot's entries (relative paths), if the job has code.
    pub code: Vec<Entry>,
    /// Entries of `download`-mode inputs, by input name.
    pub downloads: BTreeMap<String, Vec<Entry>>,
    pub limits: Limits,
    /// Names of environment variables that hold decrypted secrets.
    pub secret_env: std::collections::BTreeSet<String>,
    /// How the run's MLflow client reaches tug's tracking API, if it can.
    pub tracking: Option<TrackingAccess>,
}

/// The MLflow tracking settings a run's container gets.
pub struct TrackingAccess {
    /// `http://<address containers reach>:<port>`.
    pub uri: String,
    /// A token that writes to this run only (`tracking::token`).
    pub token: String,
    pub experiment_id: i64,
}

/// The container a run gets.
pub fn container_spec(sub: &JobSubmission, inp: SpecInputs<'_>) -> RunSpec {
    let mut env = sub.environment_variables.clone();
    let fixed = [
        ("TUG_RUN_ID", inp.run_id),
        ("TUG_LOG_NONCE", inp.log_nonce),
        ("AZUREML_RUN_ID", inp.run_id),
        ("AZUREML_ARM_PROJECT_NAME", inp.experiment),
        ("MLFLOW_RUN_ID", inp.run_id),
        ("MLFLOW_EXPERIMENT_NAME", inp.experiment),
    ];
    for (k, v) in fixed {
        env.insert(k.to_string(), v.to_string());
    }
    let mut secret_env = inp.secret_env;
    if let Some(t) = &inp.tracking {
        env.insert("MLFLOW_TRACKING_URI".into(), t.uri.clone());
        env.insert("MLFLOW_TRACKING_TOKEN".into(), t.token.clone());
        env.insert("MLFLOW_EXPERIMENT_ID".into(), t.experiment_id.to_string());
        // Kept out of logs and, on Kubernetes, out of the pod spec (a Secret holds it).
        secret_env.insert("MLFLOW_TRACKING_TOKEN".into());
    }
    // A uid with no passwd entry gets HOME=/, where nothing can be written.
    env.entry("HOME".to_string())
        .or_insert_with(|| paths::HOME.to_string());
    for (name, binding) in &sub.inputs {
        let value = match binding {
            InputBinding::Literal { text } => text.clone(),
            InputBinding::Data { container_path, .. } => container_path.clone(),
        };
        env.insert(format!("AZURE_ML_INPUT_{name}"), value);
    }
    for (name, out) in &sub.outputs {
        env.insert(
            format!("AZURE_ML_OUTPUT_{name}"),
            out.container_path.clone(),
        );
    }

    // Everything placed before start lives under /tug, owned by the run's user.
    let dir = |path: &str| Entry {
        path: path.to_string(),
        data: None,
        executable: false,
    };
    let root = paths::ROOT.trim_start_matches('/');
    let code = paths::CODE.trim_start_matches('/');
    let mut entries = vec![
        dir(root),
        dir(code),
        dir(&format!("{code}/outputs")),
        dir(&format!("{code}/logs")),
        dir(paths::INPUTS.trim_start_matches('/')),
        dir(paths::OUTPUTS.trim_start_matches('/')),
        dir(paths::HOME.trim_start_matches('/')),
    ];
    entries.extend(inp.code.into_iter().map(|mut e| {
        e.path = format!("{code}/{}", e.path);
        e
    }));
    let mut mounts = Vec::new();
    for (name, binding) in &sub.inputs {
        let InputBinding::Data {
            host_path,
            container_path,
            is_file,
            mode,
        } = binding
        else {
            continue;
        };
        match mode {
            InputMode::RoMount => mounts.push(HostMount {
                host: host_path.clone(),
                container: container_path.clone(),
            }),
            InputMode::Download => {
                let base = container_path.trim_start_matches('/');
                let base = if *is_file {
                    base.rsplit_once('/')
                        .map(|(d, _)| d)
                        .unwrap_or(base)
                        .to_string()
                } else {
                    base.to_string()
                };
                entries.push(dir(&base));
                for mut e in inp.downloads.get(name).cloned().unwrap_or_default() {
                    e.path = format!("{base}/{}", e.path);
                    entries.push(e);
                }
            }
        }
    }
    let collect = collect_list(sub);
    for (folder, _) in &collect[2..] {
        entries.push(dir(folder.trim_start_matches('/')));
    }
    // tug's own images run jobs as a non-root user; a user's Dockerfile decides its own.
    let user = match sub.environment {
        ResolvedEnvironment::Image { .. } => Some(format!("{RUN_UID}:{RUN_UID}")),
        ResolvedEnvironment::Build { .. } => None,
    };
    // Under an image's own USER (unknown uid) the folders must be writable by anyone;
    // they are private to the container.
    let dir_mode = if user.is_some() { 0o755 } else { 0o777 };
    RunSpec {
        workspace_id: inp.workspace_id.to_string(),
        run_id: inp.run_id.to_string(),
        image: inp.image.to_string(),
        command: sub.command.clone(),
        working_dir: paths::CODE.to_string(),
        env,
        user,
        secret_env,
        files: entries,
        owner: (RUN_UID, RUN_UID),
        dir_mode,
        mounts,
        limits: inp.limits,
        collect,
    }
}

/// Folders collected from a run's container at its end: (container path, folder under
/// the run's artifacts). `./outputs` and `./logs` first, then each named output.
pub fn collect_list(sub: &JobSubmission) -> Vec<(String, String)> {
    let mut collect = vec![
        (format!("{}/outputs", paths::CODE), "outputs".to_string()),
        (format!("{}/logs", paths::CODE), "logs".to_string()),
    ];
    for (name, out) in &sub.outputs {
        let folder = if out.is_file {
            out.container_path
                .rsplit_once('/')
                .map(|(d, _)| d.to_string())
                .unwrap_or_else(|| out.container_path.clone())
        } else {
            out.container_path.clone()
        };
        collect.push((folder, format!("named-outputs/{name}")));
    }
    collect
}

/// Why a run's container ended, as far as tug is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited(i64),
    Canceled,
    TimedOut { limit_seconds: u64 },
}

/// The final status and error message of a run.
pub fn outcome(ending: Ending, last_lines: &[String]) -> (RunStatus, Option<String>) {
    let tail = || {
        if last_lines.is_empty() {
            String::new()
        } else {
            format!("\nlast log lines:\n{}", last_lines.join("\n"))
        }
    };
    match ending {
        Ending::Exited(0) => (RunStatus::Completed, None),
        Ending::Exited(code) => {
            let why = match code {
                137 => " (killed: out of memory or SIGKILL)",
                143 => {
                    " (stopped by SIGTERM: the Docker engine was stopped or restarted, or someone ran `docker stop`)"
                }
                139 => " (segmentation fault)",
                126 => " (command not executable)",
                127 => " (command not found)",
                _ => "",
            };
            (
                RunStatus::Failed,
                Some(format!(
                    "the command exited with code {code}{why}{}",
                    tail()
                )),
            )
        }
        Ending::Canceled => (RunStatus::Canceled, Some("canceled by request".into())),
        Ending::TimedOut { limit_seconds } => (
            RunStatus::Failed,
            Some(format!(
                "the run exceeded limits.timeout of {limit_seconds} s and was stopped; raise limits.timeout in the job file if it needs longer{}",
                tail()
            )),
        ),
    }
}

/// The last `n` lines of a log's text.
pub fn tail_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::model::{OutputBinding, Resources};

    fn sub() -> JobSubmission {
        JobSubmission {
            name: None,
            display_name: None,
            experiment_name: "digits".into(),
            description: None,
            tags: BTreeMap::new(),
            command: "python train.py --data /tug/inputs/data".into(),
            code_snapshot: Some("abc".into()),
            environment: ResolvedEnvironment::Image {
                image: "tug/python:3.11-sklearn".into(),
                conda_file: None,
                pip_requirements: vec![],
            },
            environment_variables: [("SEED".to_string(), "1".to_string())].into(),
            compute: "local".into(),
            inputs: [
                (
                    "data".to_string(),
                    InputBinding::Data {
                        host_path: "/home/u/data".into(),
                        container_path: "/tug/inputs/data".into(),
                        is_file: false,
                        mode: InputMode::RoMount,
                    },
                ),
                (
                    "cfg".to_string(),
                    InputBinding::Data {
                        host_path: "/home/u/c.json".into(),
                        container_path: "/tug/inputs/cfg/c.json".into(),
                        is_file: true,
                        mode: InputMode::Download,
                    },
                ),
                (
                    "lr".to_string(),
                    InputBinding::Literal { text: "0.1".into() },
                ),
            ]
            .into(),
            outputs: [(
                "model".to_string(),
                OutputBinding {
                    container_path: "/tug/outputs/model".into(),
                    is_file: false,
                    datastore_path: None,
                },
            )]
            .into(),
            resources: Resources::default(),
            timeout_seconds: None,
            source: None,
        }
    }

    fn spec() -> RunSpec {
        container_spec(
            &sub(),
            SpecInputs {
                workspace_id: "ws",
                run_id: "r1",
                experiment: "digits",
                image: "tug/env:1",
                log_nonce: "n0nce",
                code: vec![Entry {
                    path: "train.py".into(),
                    data: Some(b"print(1)".to_vec()),
                    executable: false,
                }],
                downloads: [(
                    "cfg".to_string(),
                    vec![Entry {
                        path: "c.json".into(),
                        data: Some(b"{}".to_vec()),
                        executable: false,
                    }],
                )]
                .into(),
                limits: Limits::default(),
                secret_env: Default::default(),
                tracking: None,
            },
        )
    }

    #[test]
    fn environment_carries_run_identity_and_io() {
        let s = spec();
        assert_eq!(s.env["TUG_LOG_NONCE"], "n0nce");
        assert_eq!(s.env["AZUREML_RUN_ID"], "r1");
        assert_eq!(s.env["SEED"], "1");
        assert_eq!(s.env["AZURE_ML_INPUT_lr"], "0.1");
        assert_eq!(s.env["AZURE_ML_OUTPUT_model"], "/tug/outputs/model");
        assert_eq!(s.user.as_deref(), Some("1000:1000"));
        assert_eq!(s.working_dir, "/tug/code");
    }

    #[test]
    fn mlflow_settings_reach_the_run_and_the_token_is_a_secret() {
        let s = spec();
        assert!(!s.env.contains_key("MLFLOW_TRACKING_URI"));
        let s = container_spec(
            &sub(),
            SpecInputs {
                workspace_id: "ws",
                run_id: "r1",
                experiment: "digits",
                image: "tug/env:1",
                log_nonce: "n",
                code: vec![],
                downloads: Default::default(),
                limits: Limits::default(),
                secret_env: Default::default(),
                tracking: Some(TrackingAccess {
                    uri: "http://172.17.0.1:41000".into(),
                    token: "tug-run.r1.abc".into(),
                    experiment_id: 3,
                }),
            },
        );
        assert_eq!(s.env["MLFLOW_TRACKING_URI"], "http://172.17.0.1:41000");
        assert_eq!(s.env["MLFLOW_RUN_ID"], "r1");
        assert_eq!(s.env["MLFLOW_EXPERIMENT_ID"], "3");
        assert_eq!(s.env["MLFLOW_EXPERIMENT_NAME"], "digits");
        assert!(s.secret_env.contains("MLFLOW_TRACKING_TOKEN"));
    }

    #[test]
    fn code_downloads_and_outputs_are_placed_and_collected() {
        let s = spec();
        let entries = crate::snapshot::entries_from_tar(&s.files_tar()).unwrap();
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        for p in [
            "tug/code/train.py",
            "tug/code/outputs",
            "tug/inputs/cfg/c.json",
            "tug/outputs/model",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
        assert_eq!(
            s.mounts,
            [HostMount {
                host: "/home/u/data".into(),
                container: "/tug/inputs/data".into()
            }]
        );
        assert!(s.collect.contains(&(
            "/tug/outputs/model".to_string(),
            "named-outputs/model".to_string()
        )));
        assert!(
            s.collect
                .contains(&("/tug/code/outputs".to_string(), "outputs".to_string()))
        );
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome(Ending::Exited(0), &[]).0, RunStatus::Completed);
        let (st, msg) = outcome(Ending::Exited(3), &["boom".into()]);
        assert_eq!(st, RunStatus::Failed);
        let msg = msg.unwrap();
        assert!(msg.contains("code 3") && msg.contains("boom"), "{msg}");
        assert_eq!(outcome(Ending::Canceled, &[]).0, RunStatus::Canceled);
        let (st, msg) = outcome(Ending::TimedOut { limit_seconds: 5 }, &[]);
        assert_eq!(st, RunStatus::Failed);
        assert!(msg.unwrap().contains("limits.timeout of 5 s"));
        assert_eq!(tail_lines("a\nb\nc\n", 2), ["b", "c"]);
    }
}
