//! Secrets through the real CLI, server and Docker engine: set from stdin, referenced from
//! a job file, decrypted into the container only, masked in the streamed and kept logs and
//! in logged params, and absent in plain text from every file of the workspace.

mod common;

use std::time::Duration;

use common::{Ws, job_yaml};

const VALUE: &str = "hunter2-Very-Secret-42";

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let bytes = std::fs::read(&p).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

#[test]
fn a_secret_reaches_the_container_and_nothing_else() {
    let ws = Ws::new();
    ws.write("src/show.py", &format!(
        "import os\n\
         v = os.environ['DB_PASSWORD']\n\
         print('pw=' + v, 'len=%d' % len(v), flush=True)\n\
         import hashlib\n\
         print('ok' if hashlib.sha256(v.encode()).hexdigest() == {digest:?} else 'WRONG', flush=True)\n\
         import tug\n\
         tug.log_param('leaked', 'x' + v)\n",
        digest = tug::snapshot::sha256_hex(VALUE.as_bytes())
    ));
    ws.set_secret("DB_PASSWORD", VALUE);
    let listed = ws.ok(&["secret", "list"]);
    assert!(
        listed.contains("DB_PASSWORD") && !listed.contains(VALUE),
        "{listed}"
    );

    let yaml = job_yaml(
        "python3 show.py",
        "environment_variables:\n  DB_PASSWORD: ${{secrets.DB_PASSWORD}}\n",
    );
    ws.write("job.yml", &yaml);
    let out = ws.tug(&["job", "create", "-f", "job.yml", "--stream"]);
    let streamed = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{streamed}");
    assert!(
        streamed.contains("pw=***"),
        "masked in the stream: {streamed}"
    );
    assert!(
        streamed.contains(&format!("len={}", VALUE.len())),
        "{streamed}"
    );
    assert!(
        streamed.contains("\nok") || streamed.contains("ok\n"),
        "the container got the value: {streamed}"
    );
    assert!(!streamed.contains(VALUE), "{streamed}");

    let runs = ws.json(&["job", "list"]);
    let id = runs[0]["id"]
        .as_str()
        .or(runs[0]["name"].as_str())
        .unwrap()
        .to_string();
    let shown = ws.show(&id).to_string();
    assert!(
        shown.contains("${{secrets.DB_PASSWORD}}"),
        "the reference is kept: {shown}"
    );
    assert!(shown.contains("x***"), "a logged param is masked: {shown}");
    assert!(!shown.contains(VALUE), "{shown}");

    // Nothing in the workspace holds the value: store, logs, outputs, secret store.
    ws.ok(&["server", "stop"]);
    std::thread::sleep(Duration::from_millis(500));
    let hits = files_containing(ws.path(), VALUE.as_bytes());
    assert!(hits.is_empty(), "the plain value is in {hits:?}");
}

#[test]
fn a_missing_or_spliced_secret_is_refused_at_submission() {
    let ws = Ws::new();
    ws.write("src/x.py", "");
    let yaml = job_yaml(
        "echo hi",
        "environment_variables:\n  TOKEN: ${{secrets.NOPE}}\n",
    );
    ws.write("job.yml", &yaml);
    let out = ws.tug(&["job", "create", "-f", "job.yml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("environment_variables.TOKEN") && err.contains("tug secret set NOPE"),
        "{err}"
    );

    let yaml = job_yaml(
        "echo hi",
        "environment_variables:\n  URL: https://u:${{secrets.NOPE}}@h\n",
    );
    ws.write("job2.yml", &yaml);
    let out = ws.tug(&["job", "create", "-f", "job2.yml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("job2.yml:") && err.contains("is not a secret reference"),
        "{err}"
    );
    let runs = ws.json(&["job", "list"]);
    assert_eq!(
        runs.as_array().map_or(0, Vec::len),
        0,
        "nothing was created: {runs}"
    );
}
