//! Settings of `tug-infsrv`: azmlinfsrv's flags, environment variables and config file, plus
//! tug's own `TUG_*` variables, resolved with azmlinfsrv's precedence (flag > env > file).
//!
//! Resolution is pure: it reads the environment and files only through [`Host`], so tests
//! feed it maps. [`Settings::resolve`] returns every problem as a [`SettingsError`] naming the
//! setting, where its value came from, and how to fix it; the binary exits 2 on those.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod file;

use file::{find_config_file, read_config_file};

/// Where the scoring code lives when nothing says otherwise (the Azure ML image layout).
pub const DEFAULT_APP_ROOT: &str = "/var/azureml-app";
/// REQUEST frames are at most 2^31 − 1 bytes; keep room for the meta next to the body.
pub const MAX_BODY_LIMIT: u64 = (i32::MAX as u64) - (1 << 20);
/// Queued requests a busy worker holds behind its current one by default (TUG_PIPELINE).
pub const DEFAULT_PIPELINE: u64 = 8;
/// More than this only makes requests wait behind a slow one while other workers free up.
pub const MAX_PIPELINE: u64 = 16;

/// Command-line flags, azmlinfsrv's spelling first (`--entry_script`), tug's as aliases.
#[derive(Debug, Default, Clone, clap::Parser)]
#[command(
    name = "tug-infsrv",
    version,
    about = "The Azure ML inference-server HTTP contract in front of Python worker processes",
    after_help = "Environment: SCORING_TIMEOUT_MS, WORKER_COUNT, WORKER_TIMEOUT, SERVICE_NAME, \
                  SERVICE_VERSION, SERVICE_PATH_PREFIX, AML_APP_ROOT, AZUREML_ENTRY_SCRIPT, \
                  AZUREML_MODEL_DIR, AML_CORS_ORIGINS, AZUREML_CONFIG_FILE, TUG_AUTH_KEY_SHA256, \
                  TUG_MAX_REQUEST_BYTES, TUG_MAX_QUEUE, TUG_PIPELINE, TUG_SHUTDOWN_GRACE_S, TUG_FRONT_THREADS, TUG_FRONT_SCHED, \
                  TUG_LOG (log filter, default info).\n\
                  `tug-infsrv router ...` runs the endpoint router instead."
)]
pub struct Flags {
    /// The scoring script (relative to the current folder, or absolute).
    #[arg(
        long = "entry_script",
        visible_alias = "entry-script",
        value_name = "PATH"
    )]
    pub entry_script: Option<PathBuf>,
    /// The model folder, given to the script as AZUREML_MODEL_DIR.
    #[arg(long = "model_dir", visible_alias = "model-dir", value_name = "PATH")]
    pub model_dir: Option<PathBuf>,
    /// TCP port to serve on.
    #[arg(long, default_value_t = 5001)]
    pub port: u16,
    /// Address to bind; loopback unless told (images pass 0.0.0.0).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Python worker processes (each runs init() once, then one request at a time).
    #[arg(long = "worker_count", visible_alias = "workers", value_name = "N")]
    pub worker_count: Option<String>,
    /// JSON settings file (keys as the environment variables).
    #[arg(
        long = "config_file",
        visible_alias = "config-file",
        value_name = "PATH"
    )]
    pub config_file: Option<PathBuf>,
    /// Comma-separated origins allowed by CORS ("*" for any).
    #[arg(long = "access_control_allow_origins", value_name = "ORIGINS")]
    pub cors_origins: Option<String>,
    /// Python interpreter for the workers (default: python3 on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Folder holding tug_worker.py (default: the copy embedded in this binary).
    #[arg(long = "shim-dir", visible_alias = "shim_dir", value_name = "PATH")]
    pub shim_dir: Option<PathBuf>,
    /// Accepted for azmlinfsrv compatibility; tug does not send to Application Insights.
    #[arg(long = "appinsights_instrumentation_key", hide = true)]
    pub appinsights_instrumentation_key: Option<String>,
}

/// Everything the front needs, resolved and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Absolute path of the scoring script.
    pub entry_script: PathBuf,
    /// AML_APP_ROOT handed to the workers.
    pub app_root: PathBuf,
    pub model_dir: Option<PathBuf>,
    pub host: String,
    pub port: u16,
    pub worker_count: usize,
    /// WORKER_TIMEOUT; `None` when 0 (never), as gunicorn reads it.
    pub worker_timeout: Option<Duration>,
    pub scoring_timeout_ms: u64,
    pub service_name: String,
    pub service_version: String,
    /// "" or "/segment[/segment]" with no trailing slash.
    pub path_prefix: String,
    /// Raw SERVICE_PATH_PREFIX when one was set, passed to workers unchanged.
    pub path_prefix_raw: Option<String>,
    pub cors_origins: Vec<String>,
    pub python: PathBuf,
    pub shim_dir: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    /// SHA-256 digests of accepted keys; empty = no key auth.
    pub auth_key_sha256: Vec<[u8; 32]>,
    pub max_request_bytes: u64,
    pub max_queue: usize,
    /// TUG_PIPELINE: when no worker is idle, write up to this many queued requests to a busy
    /// worker behind the one it is answering (0 = never).
    pub pipeline: usize,
    pub shutdown_grace: Duration,
    /// Runtime threads for the front (TUG_FRONT_THREADS); `None` = decide from the CPU count.
    pub front_threads: Option<usize>,
    /// TUG_FRONT_SCHED: run the front's threads under SCHED_BATCH (the default) or as
    /// ordinary threads.
    pub front_batch_scheduling: bool,
    /// Things worth telling the user that do not stop the server.
    pub warnings: Vec<String>,
}

/// Everything that makes the settings unusable.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("{origin}: {problem}; {fix}")]
    Invalid {
        origin: String,
        problem: String,
        fix: String,
    },
    #[error("config file {path}: {problem}; {fix}")]
    ConfigFile {
        path: PathBuf,
        problem: String,
        fix: String,
    },
    #[error(
        "no scoring script: pass --entry_script PATH (or set AZUREML_ENTRY_SCRIPT, or put \
         main.py in AML_APP_ROOT)"
    )]
    NoEntryScript,
    #[error(
        "scoring script {path} (from {origin}) is not a file; pass the path of the .py file \
         that defines init() and run()"
    )]
    EntryScriptMissing { path: PathBuf, origin: String },
}

/// The outside world the settings are read from (the process, or a test's maps).
pub trait Host {
    fn var(&self, name: &str) -> Option<String>;
    fn cwd(&self) -> PathBuf;
    fn is_file(&self, path: &Path) -> bool;
    /// File contents; `Ok(None)` when it does not exist.
    fn read(&self, path: &Path) -> std::io::Result<Option<String>>;
}

/// The real process environment and file system.
pub struct ProcessHost;

impl Host for ProcessHost {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn cwd(&self) -> PathBuf {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
    }
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
    fn read(&self, path: &Path) -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One raw value and a human description of where it came from.
struct Found {
    value: String,
    origin: String,
}

/// The environment and config-file layers, looked up in that order.
struct Layers<'a> {
    host: &'a dyn Host,
    file: Option<(PathBuf, BTreeMap<String, String>)>,
}

impl Layers<'_> {
    fn env_or_file(&self, key: &str) -> Option<Found> {
        if let Some(value) = self.host.var(key) {
            return Some(Found {
                value,
                origin: format!("environment variable {key}"),
            });
        }
        let (path, values) = self.file.as_ref()?;
        values.get(key).map(|value| Found {
            value: value.clone(),
            origin: format!("key {key} of {}", path.display()),
        })
    }

    fn flag_env_or_file(&self, flag: &str, value: Option<String>, key: &str) -> Option<Found> {
        match value {
            Some(value) => Some(Found {
                value,
                origin: flag.to_string(),
            }),
            None => self.env_or_file(key),
        }
    }

    fn env(&self, key: &str) -> Option<Found> {
        self.host.var(key).map(|value| Found {
            value,
            origin: format!("environment variable {key}"),
        })
    }
}

fn invalid(found: &Found, problem: impl Into<String>, fix: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        origin: found.origin.clone(),
        problem: format!("{:?} {}", found.value, problem.into()),
        fix: fix.into(),
    }
}

fn parse_count(
    found: Option<Found>,
    default: u64,
    min: u64,
    max: u64,
    fix: &str,
) -> Result<u64, SettingsError> {
    let Some(found) = found else {
        return Ok(default);
    };
    match found.value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(
            &found,
            format!("is not a whole number from {min} to {max}"),
            fix,
        )),
    }
}

impl Settings {
    /// Resolves flags, environment and config file into settings, or the first problem found.
    pub fn resolve(flags: Flags, host: &dyn Host) -> Result<Settings, SettingsError> {
        let cwd = host.cwd();
        let absolute = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                cwd.join(p)
            }
        };
        let env_app_root = host
            .var("AML_APP_ROOT")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let mut warnings = Vec::new();

        // The entry script named by flag or environment decides where config.json is looked
        // for; one named only by the config file is resolved after reading it.
        let early_script = match (&flags.entry_script, host.var("AZUREML_ENTRY_SCRIPT")) {
            (Some(flag), _) => Some((absolute(flag), "--entry_script".to_string())),
            (None, Some(env)) if !env.is_empty() => Some((
                script_path(&env, env_app_root.as_deref(), &cwd),
                "environment variable AZUREML_ENTRY_SCRIPT".to_string(),
            )),
            _ => None,
        };

        let config_file = find_config_file(
            &flags,
            host,
            &cwd,
            env_app_root.as_deref(),
            early_script.as_ref(),
        )?;
        let file = match &config_file {
            Some(path) => Some((path.clone(), read_config_file(host, path, &mut warnings)?)),
            None => None,
        };
        let layers = Layers { host, file };

        let (entry_script, script_origin) = match early_script {
            Some(found) => found,
            None => match layers
                .file
                .as_ref()
                .and_then(|(path, v)| Some((path, v.get("AZUREML_ENTRY_SCRIPT")?)))
            {
                Some((path, value)) => (
                    script_path(value, env_app_root.as_deref(), &cwd),
                    format!("key AZUREML_ENTRY_SCRIPT of {}", path.display()),
                ),
                None => match &env_app_root {
                    Some(root) => (root.join("main.py"), "AML_APP_ROOT/main.py".to_string()),
                    None => return Err(SettingsError::NoEntryScript),
                },
            },
        };
        if !host.is_file(&entry_script) {
            return Err(SettingsError::EntryScriptMissing {
                path: entry_script,
                origin: script_origin,
            });
        }
        let app_root = env_app_root.unwrap_or_else(|| {
            entry_script
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_APP_ROOT))
        });

        let model_dir = match &flags.model_dir {
            Some(dir) => Some(absolute(dir)),
            None => layers
                .env_or_file("AZUREML_MODEL_DIR")
                .filter(|f| !f.value.is_empty())
                .map(|f| absolute(Path::new(&f.value))),
        };
        if model_dir.is_none() {
            warnings.push(
                "AZUREML_MODEL_DIR is not set; pass --model_dir if init() loads a model"
                    .to_string(),
            );
        }

        let worker_count = parse_count(
            layers.flag_env_or_file("--worker_count", flags.worker_count.clone(), "WORKER_COUNT"),
            1,
            1,
            1024,
            "pass the number of Python worker processes, e.g. --worker_count 2",
        )? as usize;
        let worker_timeout_s = parse_count(
            layers.env_or_file("WORKER_TIMEOUT"),
            300,
            0,
            u32::MAX as u64,
            "set WORKER_TIMEOUT to the seconds a request may take before its worker is killed \
             (0 = never)",
        )?;
        let scoring_timeout_ms = parse_count(
            layers.env_or_file("SCORING_TIMEOUT_MS"),
            3_600_000,
            1,
            u32::MAX as u64,
            "set SCORING_TIMEOUT_MS to the milliseconds run() may take",
        )?;

        let text = |key: &str, default: &str| {
            layers
                .env_or_file(key)
                .map(|f| f.value)
                .unwrap_or_else(|| default.to_string())
        };
        let path_prefix_raw = layers.env_or_file("SERVICE_PATH_PREFIX").map(|f| f.value);
        let path_prefix = normalize_prefix(path_prefix_raw.as_deref().unwrap_or(""));

        let cors_origins = layers
            .flag_env_or_file(
                "--access_control_allow_origins",
                flags.cors_origins.clone(),
                "AML_CORS_ORIGINS",
            )
            .map(|f| {
                f.value
                    .split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();

        let auth_key_sha256 = match layers.env("TUG_AUTH_KEY_SHA256") {
            Some(found) => parse_key_digests(&found)?,
            None => Vec::new(),
        };
        let max_request_bytes = parse_count(
            layers.env("TUG_MAX_REQUEST_BYTES"),
            100 << 20,
            1,
            MAX_BODY_LIMIT,
            "set TUG_MAX_REQUEST_BYTES to the largest request body in bytes (default 104857600)",
        )?;
        let max_queue = parse_count(
            layers.env("TUG_MAX_QUEUE"),
            256,
            0,
            1 << 20,
            "set TUG_MAX_QUEUE to how many requests may wait for a free worker (default 256)",
        )? as usize;
        let pipeline = parse_count(
            layers.env("TUG_PIPELINE"),
            DEFAULT_PIPELINE,
            0,
            MAX_PIPELINE,
            "set TUG_PIPELINE to how many queued requests a busy worker may hold behind its current \
             one (default 8; 0 turns pipelining off)",
        )? as usize;
        let shutdown_grace_s = parse_count(
            layers.env("TUG_SHUTDOWN_GRACE_S"),
            30,
            0,
            24 * 3600,
            "set TUG_SHUTDOWN_GRACE_S to the seconds in-flight requests get after SIGTERM (default 30)",
        )?;
        let front_threads = match layers.env("TUG_FRONT_THREADS") {
            Some(found) => Some(parse_count(
                Some(found),
                1,
                1,
                256,
                "set TUG_FRONT_THREADS to the front's runtime threads, or unset it",
            )? as usize),
            None => None,
        };
        let front_batch_scheduling = match layers.env("TUG_FRONT_SCHED") {
            None => true,
            Some(found) => match found.value.trim() {
                "batch" => true,
                "normal" => false,
                _ => {
                    return Err(invalid(
                        &found,
                        "is neither batch nor normal".to_string(),
                        "set TUG_FRONT_SCHED to batch (the front's threads never preempt a busy \
                         worker, the default) or normal",
                    ));
                }
            },
        };
        if flags.appinsights_instrumentation_key.is_some() {
            warnings.push("--appinsights_instrumentation_key is ignored: tug does not send to Application Insights".into());
        }

        Ok(Settings {
            entry_script,
            app_root,
            model_dir,
            host: flags.host,
            port: flags.port,
            worker_count,
            worker_timeout: (worker_timeout_s > 0).then(|| Duration::from_secs(worker_timeout_s)),
            scoring_timeout_ms,
            service_name: text("SERVICE_NAME", "ML service"),
            service_version: text("SERVICE_VERSION", "1.0"),
            path_prefix,
            path_prefix_raw,
            cors_origins,
            python: flags.python.unwrap_or_else(|| PathBuf::from("python3")),
            shim_dir: flags.shim_dir.map(|d| absolute(&d)),
            config_file,
            auth_key_sha256,
            max_request_bytes,
            max_queue,
            pipeline,
            shutdown_grace: Duration::from_secs(shutdown_grace_s),
            front_threads,
            front_batch_scheduling,
            warnings,
        })
    }

    /// Variables every worker gets on top of the front's environment (PROTOCOL.md, Process).
    pub fn worker_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "AZUREML_ENTRY_SCRIPT".to_string(),
                self.entry_script.display().to_string(),
            ),
            (
                "AML_APP_ROOT".to_string(),
                self.app_root.display().to_string(),
            ),
            (
                "SCORING_TIMEOUT_MS".to_string(),
                self.scoring_timeout_ms.to_string(),
            ),
            ("SERVICE_NAME".to_string(), self.service_name.clone()),
            ("SERVICE_VERSION".to_string(), self.service_version.clone()),
        ];
        if let Some(dir) = &self.model_dir {
            env.push(("AZUREML_MODEL_DIR".to_string(), dir.display().to_string()));
        }
        if let Some(prefix) = &self.path_prefix_raw {
            env.push(("SERVICE_PATH_PREFIX".to_string(), prefix.clone()));
        }
        env
    }
}

/// A script named by environment or config file: absolute as is, else under AML_APP_ROOT
/// (or the current folder when that is unset, as azmlinfsrv's CLI does).
fn script_path(value: &str, app_root: Option<&Path>, cwd: &Path) -> PathBuf {
    let path = Path::new(value);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        app_root.unwrap_or(cwd).join(path)
    }
}

/// "", "/", "api/v1/" → "", "", "/api/v1".
fn normalize_prefix(raw: &str) -> String {
    let trimmed = raw.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

fn parse_key_digests(found: &Found) -> Result<Vec<[u8; 32]>, SettingsError> {
    let fix = "give the hex SHA-256 of each accepted key, comma-separated: \
               printf %s \"$KEY\" | sha256sum (unset the variable to turn key auth off)";
    let mut digests = Vec::new();
    for (i, entry) in found.value.split(',').map(str::trim).enumerate() {
        let digest = decode_hex32(entry).ok_or_else(|| SettingsError::Invalid {
            origin: found.origin.clone(),
            problem: format!("entry {} ({entry:?}) is not 64 hex digits", i + 1),
            fix: fix.to_string(),
        })?;
        digests.push(digest);
    }
    Ok(digests)
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
