//! Unit tests of settings resolution, against a fake environment and file system.

use super::*;
use clap::Parser;
use std::collections::HashMap;

#[derive(Default)]
struct FakeHost {
    env: HashMap<String, String>,
    files: HashMap<PathBuf, String>,
}

impl FakeHost {
    fn with_script() -> FakeHost {
        let mut host = FakeHost::default();
        host.files
            .insert("/work/app/score.py".into(), "def init(): pass".into());
        host
    }
    fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
    fn file(mut self, path: &str, text: &str) -> Self {
        self.files.insert(path.into(), text.into());
        self
    }
}

impl Host for FakeHost {
    fn var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn cwd(&self) -> PathBuf {
        "/work".into()
    }
    fn is_file(&self, path: &Path) -> bool {
        self.files.contains_key(path)
    }
    fn read(&self, path: &Path) -> std::io::Result<Option<String>> {
        Ok(self.files.get(path).cloned())
    }
}

fn flags(args: &[&str]) -> Flags {
    Flags::try_parse_from(std::iter::once("tug-infsrv").chain(args.iter().copied())).unwrap()
}

fn resolve(args: &[&str], host: &FakeHost) -> Result<Settings, SettingsError> {
    Settings::resolve(flags(args), host)
}

#[test]
fn defaults_follow_azmlinfsrv_and_bind_loopback() {
    let s = resolve(
        &["--entry_script", "app/score.py"],
        &FakeHost::with_script(),
    )
    .unwrap();
    assert_eq!(s.entry_script, PathBuf::from("/work/app/score.py"));
    assert_eq!(s.app_root, PathBuf::from("/work/app"));
    assert_eq!(
        (s.host.as_str(), s.port, s.worker_count),
        ("127.0.0.1", 5001, 1)
    );
    assert_eq!(s.worker_timeout, Some(Duration::from_secs(300)));
    assert_eq!(s.scoring_timeout_ms, 3_600_000);
    assert_eq!(
        (s.service_name.as_str(), s.service_version.as_str()),
        ("ML service", "1.0")
    );
    assert_eq!((s.max_request_bytes, s.max_queue), (100 << 20, 256));
    assert_eq!(s.shutdown_grace, Duration::from_secs(30));
    assert!(s.auth_key_sha256.is_empty() && s.cors_origins.is_empty());
    assert_eq!(s.python, PathBuf::from("python3"));
    assert!(s.warnings.iter().any(|w| w.contains("AZUREML_MODEL_DIR")));
}

#[test]
fn hyphenated_aliases_and_workers_flag_are_accepted() {
    let s = resolve(
        &[
            "--entry-script",
            "/work/app/score.py",
            "--model-dir",
            "m",
            "--workers",
            "3",
            "--host",
            "0.0.0.0",
        ],
        &FakeHost::with_script(),
    )
    .unwrap();
    assert_eq!(s.model_dir, Some(PathBuf::from("/work/m")));
    assert_eq!((s.worker_count, s.host.as_str()), (3, "0.0.0.0"));
}

#[test]
fn flag_beats_env_beats_file() {
    let host = FakeHost::with_script()
        .env("WORKER_COUNT", "2")
        .env("SCORING_TIMEOUT_MS", "5000")
        .file(
            "/work/app/config.json",
            r#"{"WORKER_COUNT": 7, "SCORING_TIMEOUT_MS": 9, "SERVICE_NAME": "from-file", "WORKER_TIMEOUT": "12"}"#,
        );
    let s = resolve(
        &["--entry_script", "app/score.py", "--worker_count", "4"],
        &host,
    )
    .unwrap();
    assert_eq!(s.worker_count, 4);
    assert_eq!(s.scoring_timeout_ms, 5000);
    assert_eq!(s.service_name, "from-file");
    assert_eq!(s.worker_timeout, Some(Duration::from_secs(12)));
    assert_eq!(s.config_file, Some(PathBuf::from("/work/app/config.json")));
    let s = resolve(&["--entry_script", "app/score.py"], &host).unwrap();
    assert_eq!(s.worker_count, 2);
}

#[test]
fn entry_script_can_come_from_env_relative_to_app_root_or_from_the_config_file() {
    let host = FakeHost::with_script()
        .env("AML_APP_ROOT", "/work/app")
        .env("AZUREML_ENTRY_SCRIPT", "score.py");
    let s = resolve(&[], &host).unwrap();
    assert_eq!(s.entry_script, PathBuf::from("/work/app/score.py"));

    let host = FakeHost::with_script()
        .env("AZUREML_CONFIG_FILE", "/etc/tug.json")
        .file(
            "/etc/tug.json",
            r#"{"AZUREML_ENTRY_SCRIPT": "/work/app/score.py", "AML_CORS_ORIGINS": "a.com, b.com"}"#,
        );
    let s = resolve(&[], &host).unwrap();
    assert_eq!(s.entry_script, PathBuf::from("/work/app/score.py"));
    assert_eq!(s.cors_origins, vec!["a.com", "b.com"]);
}

#[test]
fn missing_script_and_config_file_errors_say_what_to_do() {
    let err = resolve(&[], &FakeHost::default()).unwrap_err();
    assert_eq!(err, SettingsError::NoEntryScript);
    assert!(err.to_string().contains("--entry_script"));

    let err = resolve(&["--entry_script", "nope.py"], &FakeHost::with_script()).unwrap_err();
    assert!(
        err.to_string()
            .contains("/work/nope.py (from --entry_script) is not a file"),
        "{err}"
    );

    let err = resolve(
        &["--entry_script", "app/score.py", "--config_file", "c.json"],
        &FakeHost::with_script(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("/work/c.json: does not exist (from --config_file)"),
        "{err}"
    );

    let host = FakeHost::with_script().file("/work/app/config.json", "[1]");
    let err = resolve(&["--entry_script", "app/score.py"], &host).unwrap_err();
    assert!(err.to_string().contains("is not a JSON object"), "{err}");
}

#[test]
fn unknown_config_keys_warn_with_a_suggestion() {
    let host = FakeHost::with_script().file(
        "/work/app/config.json",
        r#"{"worker_count": 2, "subscription_id": "x"}"#,
    );
    let s = resolve(&["--entry_script", "app/score.py"], &host).unwrap();
    assert_eq!(s.worker_count, 1);
    let warning = s
        .warnings
        .iter()
        .find(|w| w.contains("ignoring keys"))
        .unwrap();
    assert!(
        warning.contains("worker_count (did you mean WORKER_COUNT?)"),
        "{warning}"
    );
    assert!(warning.contains("subscription_id"), "{warning}");
}

#[test]
fn bad_numbers_name_the_setting_and_its_origin() {
    let host = FakeHost::with_script().env("WORKER_COUNT", "zero");
    let err = resolve(&["--entry_script", "app/score.py"], &host).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("environment variable WORKER_COUNT: \"zero\" is not a whole number"),
        "{text}"
    );
    assert!(text.contains("--worker_count 2"), "{text}");

    let err = resolve(
        &["--entry_script", "app/score.py", "--worker_count", "0"],
        &FakeHost::with_script(),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("--worker_count: \"0\""),
        "{err}"
    );

    let host = FakeHost::with_script().env("TUG_MAX_REQUEST_BYTES", "99999999999");
    assert!(resolve(&["--entry_script", "app/score.py"], &host).is_err());
}

#[test]
fn worker_timeout_zero_means_never() {
    let host = FakeHost::with_script().env("WORKER_TIMEOUT", "0");
    let s = resolve(&["--entry_script", "app/score.py"], &host).unwrap();
    assert_eq!(s.worker_timeout, None);
}

#[test]
fn auth_digests_must_be_hex_sha256() {
    let good = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let host = FakeHost::with_script().env(
        "TUG_AUTH_KEY_SHA256",
        &format!("{good}, {}", good.to_uppercase()),
    );
    let s = resolve(&["--entry_script", "app/score.py"], &host).unwrap();
    assert_eq!(s.auth_key_sha256.len(), 2);
    assert_eq!(s.auth_key_sha256[0], s.auth_key_sha256[1]);
    assert_eq!(s.auth_key_sha256[0][0], 0x9f);

    for bad in ["", "abc", &format!("{good},zz")] {
        let host = FakeHost::with_script().env("TUG_AUTH_KEY_SHA256", bad);
        let err = resolve(&["--entry_script", "app/score.py"], &host).unwrap_err();
        assert!(err.to_string().contains("sha256sum"), "{err}");
    }
}

#[test]
fn path_prefix_is_normalized_but_passed_to_workers_as_given() {
    let host = FakeHost::with_script().env("SERVICE_PATH_PREFIX", "api/v1/");
    let s = resolve(
        &["--entry_script", "app/score.py", "--model_dir", "/m"],
        &host,
    )
    .unwrap();
    assert_eq!(s.path_prefix, "/api/v1");
    let env = s.worker_env();
    assert!(env.contains(&("SERVICE_PATH_PREFIX".into(), "api/v1/".into())));
    assert!(env.contains(&("AZUREML_MODEL_DIR".into(), "/m".into())));
    assert!(env.contains(&("AML_APP_ROOT".into(), "/work/app".into())));
    assert_eq!(normalize_prefix("/"), "");
}

#[test]
fn pipeline_depth_and_front_scheduling_have_defaults_and_checked_overrides() {
    let s = resolve(
        &["--entry_script", "app/score.py"],
        &FakeHost::with_script(),
    )
    .unwrap();
    assert_eq!(s.pipeline, DEFAULT_PIPELINE as usize);
    assert!(s.front_batch_scheduling);

    let host = FakeHost::with_script()
        .env("TUG_PIPELINE", "0")
        .env("TUG_FRONT_SCHED", "normal");
    let s = resolve(&["--entry_script", "app/score.py"], &host).unwrap();
    assert_eq!(s.pipeline, 0);
    assert!(!s.front_batch_scheduling);

    let host = FakeHost::with_script().env("TUG_PIPELINE", "17");
    let err = resolve(&["--entry_script", "app/score.py"], &host).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("TUG_PIPELINE") && text.contains("0 to 16"),
        "{text}"
    );

    let host = FakeHost::with_script().env("TUG_FRONT_SCHED", "fifo");
    let err = resolve(&["--entry_script", "app/score.py"], &host).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("TUG_FRONT_SCHED") && text.contains("batch") && text.contains("normal"),
        "{text}"
    );
}
