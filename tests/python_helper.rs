//! The Python helper shipped into every environment image (`images/python`): its own
//! unittest suite, run here so `cargo test` covers it.

use std::process::Command;

#[test]
fn python_helper_unit_tests_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "images/python/tests"])
        .current_dir(root)
        .output()
        .expect("python3 is needed to test the helper");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("OK"), "{stderr}");
}

/// The scoring worker shim (`images/serving`): its suite drives real worker processes over
/// the framed socket exactly as `tug-infsrv` does.
#[test]
fn scoring_worker_unit_tests_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "images/serving/tests",
            "-p",
            "test_*.py",
        ])
        .current_dir(root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 is needed to test the worker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("OK"), "{stderr}");
}
