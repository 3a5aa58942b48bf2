//! The azmlinfsrv config file (`--config_file`, AZUREML_CONFIG_FILE, or a `config.json` found
//! next to the code): where it is, and the settings it holds as strings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Flags, Host, SettingsError};

/// Keys the config file may set (azmlinfsrv's names, which are also the environment's).
pub(super) const FILE_KEYS: &[&str] = &[
    "AZUREML_ENTRY_SCRIPT",
    "AZUREML_MODEL_DIR",
    "WORKER_COUNT",
    "WORKER_TIMEOUT",
    "SCORING_TIMEOUT_MS",
    "SERVICE_NAME",
    "SERVICE_VERSION",
    "SERVICE_PATH_PREFIX",
    "AML_CORS_ORIGINS",
    // Read by azmlinfsrv, meaningless here; accepted so a config written for it stays quiet.
    "AZUREML_SOURCE_DIRECTORY",
    "WORKSPACE_NAME",
    "AZUREML_LOG_LEVEL",
    "AML_APP_INSIGHTS_ENABLED",
    "AML_APP_INSIGHTS_KEY",
    "APP_INSIGHTS_LOG_RESPONSE_ENABLED",
    "AML_MODEL_DC_STORAGE_ENABLED",
    "AZUREML_DEBUG_PORT",
    "HOSTNAME",
];

/// `--config_file` or AZUREML_CONFIG_FILE when given (and then it must exist), else the first
/// non-empty `config.json` in AML_APP_ROOT or the entry script's folder.
pub(super) fn find_config_file(
    flags: &Flags,
    host: &dyn Host,
    cwd: &Path,
    app_root: Option<&Path>,
    script: Option<&(PathBuf, String)>,
) -> Result<Option<PathBuf>, SettingsError> {
    let explicit = match (&flags.config_file, host.var("AZUREML_CONFIG_FILE")) {
        (Some(path), _) => Some((path.clone(), "--config_file")),
        (None, Some(env)) if !env.is_empty() => Some((PathBuf::from(env), "AZUREML_CONFIG_FILE")),
        _ => None,
    };
    if let Some((path, origin)) = explicit {
        let path = if path.is_absolute() {
            path
        } else {
            cwd.join(path)
        };
        if !host.is_file(&path) {
            return Err(SettingsError::ConfigFile {
                path,
                problem: format!("does not exist (from {origin})"),
                fix: format!("fix the path or drop {origin}"),
            });
        }
        return Ok(Some(path));
    }
    let script_dir = script.and_then(|(path, _)| path.parent());
    for dir in [app_root, script_dir].into_iter().flatten() {
        let candidate = dir.join("config.json");
        if host.is_file(&candidate) {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// Reads a JSON object of settings into strings; numbers and booleans are accepted as azmlinfsrv
/// does. An empty file counts as no file (azmlinfsrv skips those too).
pub(super) fn read_config_file(
    host: &dyn Host,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, String>, SettingsError> {
    let bad = |problem: String, fix: &str| SettingsError::ConfigFile {
        path: path.to_path_buf(),
        problem,
        fix: fix.to_string(),
    };
    let text = host
        .read(path)
        .map_err(|e| bad(format!("cannot be read: {e}"), "check its permissions"))?
        .unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| {
            bad(
                format!("is not a JSON object: {e}"),
                "write it as {\"WORKER_COUNT\": 2, \"SCORING_TIMEOUT_MS\": 60000}",
            )
        })?;
    let mut values = BTreeMap::new();
    let mut unknown = Vec::new();
    for (key, value) in object {
        if !FILE_KEYS.contains(&key.as_str()) {
            match FILE_KEYS.iter().find(|k| k.eq_ignore_ascii_case(&key)) {
                Some(known) => unknown.push(format!("{key} (did you mean {known}?)")),
                None => unknown.push(key),
            }
            continue;
        }
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(bad(
                    format!("{key} is {other}, not a string or number"),
                    "give each setting a string or number value",
                ));
            }
        };
        values.insert(key, text);
    }
    if !unknown.is_empty() {
        warnings.push(format!(
            "{}: ignoring keys that are not settings: {}",
            path.display(),
            unknown.join(", ")
        ));
    }
    Ok(values)
}
