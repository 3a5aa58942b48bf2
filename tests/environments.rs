//! Environments: user Dockerfile contexts, failed builds, missing base images,
//! registered environments, inputs copied in, resource limits, the idle server.

mod common;

use std::time::Duration;

use common::{MINIMAL, Ws, job_yaml};

const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn a_dockerfile_context_builds_once_and_runs() {
    let ws = Ws::new();
    ws.write(
        "ctx/Dockerfile",
        // A line unique to this test run, so the first build really builds.
        &format!(
            "FROM {MINIMAL}\nRUN echo from-dockerfile > /marker\nLABEL test.run={}\n",
            ws.path().file_name().unwrap().to_string_lossy()
        ),
    );
    ws.write("src/x.txt", "");
    let yaml = "code: src\ncommand: cat /marker && python3 -c 'import tug; tug.log(\"m\", 1)'\nenvironment:\n  build:\n    path: ctx\n";
    let id = ws.submit("job.yml", yaml);
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}");
    let log = std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt")).unwrap();
    assert!(log.contains("from-dockerfile"), "{log}");
    assert_eq!(
        v["metrics"]["m"], 1.0,
        "the helper is added to user images too"
    );
    let build = std::fs::read_to_string(ws.run_dir(&id).join("system_logs/build.log")).unwrap();
    assert!(build.contains("Step "), "{build}");
    // The image carries tug's labels.
    let image = v["image"].as_str().unwrap();
    let out = std::process::Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"tug.env.hash\"}}",
            image,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim().len(), 64);

    let again = ws.submit("job.yml", yaml);
    let w = ws.wait(&again, LIMIT);
    assert_eq!(w["image"], v["image"]);
    let build = std::fs::read_to_string(ws.run_dir(&again).join("system_logs/build.log")).unwrap();
    assert!(build.starts_with("reused"), "{build}");
}

#[test]
fn a_failed_build_names_the_step_and_its_last_lines() {
    let ws = Ws::new();
    ws.write(
        "ctx/Dockerfile",
        &format!(
            "FROM {MINIMAL}\nRUN echo preparing-things && echo broken-dependency >&2 && exit 7\n"
        ),
    );
    let id = ws.submit(
        "job.yml",
        "command: echo never\nenvironment:\n  build:\n    path: ctx\n",
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Failed", "{v:#}");
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("Step 2/"), "names the failing step: {err}");
    assert!(
        err.contains("preparing-things"),
        "shows the last lines: {err}"
    );
    assert!(
        err.contains("exit 7")
            || err.contains("code: 7")
            || err.contains("returned a non-zero code: 7"),
        "{err}"
    );
    assert!(v["started_at"].is_null(), "no container ran");
}

#[test]
fn a_missing_base_image_says_which_recipe_builds_it() {
    let ws = Ws::new();
    ws.write("src/x.txt", "");
    let yaml = job_yaml("echo hi", "").replace(MINIMAL, "tug/python:3.11-gpu");
    let id = ws.submit("job.yml", &yaml);
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Failed");
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("tug/python:3.11-gpu"), "{err}");
    assert!(err.contains("images/build-base.sh"), "{err}");
}

#[test]
fn registered_environments_resolve_by_version_and_latest() {
    let ws = Ws::new();
    ws.write(
        "env.yml",
        &format!("name: base-env\nversion: \"1\"\nimage: {MINIMAL}\n"),
    );
    let out = ws.ok(&["environment", "create", "-f", "env.yml"]);
    assert!(out.contains("base-env:1"), "{out}");
    // Same content again is fine; different content under the same version is refused.
    ws.ok(&["environment", "create", "-f", "env.yml"]);
    ws.write(
        "env2.yml",
        "name: base-env\nversion: \"1\"\nimage: other:1\n",
    );
    let clash = ws.tug(&["environment", "create", "-f", "env2.yml"]);
    assert!(!clash.status.success());
    assert!(String::from_utf8_lossy(&clash.stderr).contains("bump `version:`"));
    let list = ws.json(&["environment", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);

    ws.write("src/x.txt", "");
    for env in ["azureml:base-env:1", "azureml:base-env@latest"] {
        let id = ws.submit(
            "job.yml",
            &format!("code: src\ncommand: echo ok\nenvironment: {env}\n"),
        );
        assert_eq!(ws.wait(&id, LIMIT)["status"], "Completed");
    }
    ws.write(
        "job.yml",
        "command: echo ok\nenvironment: azureml:nope@latest\n",
    );
    let missing = ws.tug(&["job", "create", "-f", "job.yml"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("no environment named `nope`"), "{stderr}");
    assert_eq!(
        ws.json(&["job", "list"]).as_array().unwrap().len(),
        2,
        "no run was created"
    );
}

#[test]
fn download_inputs_literals_and_limits_reach_the_container() {
    let ws = Ws::new();
    ws.write("data/a.csv", "x,y\n1,2\n");
    ws.write("one.txt", "single file");
    ws.write(
        ".tug/config.yaml",
        "compute:\n  local:\n    instance_types:\n      small: {cpu: 1, memory: 256Mi}\n",
    );
    ws.write(
        "src/check.py",
        r#"
import os, sys
print("data", open(os.path.join(sys.argv[1], "a.csv")).read().splitlines()[1])
print("file", open(sys.argv[2]).read())
print("flag", sys.argv[3], "rate", sys.argv[4])
print("uid", os.getuid())
for p in ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"):
    if os.path.exists(p):
        print("memlimit", open(p).read().strip())
"#,
    );
    let id = ws.submit(
        "job.yml",
        &job_yaml(
            "python check.py ${{inputs.data}} ${{inputs.one}} ${{inputs.flag}} ${{inputs.rate}}",
            "inputs:\n  data:\n    type: uri_folder\n    path: data\n    mode: download\n  one:\n    type: uri_file\n    path: one.txt\n  flag: yes\n  rate: 1e-3\nresources:\n  instance_type: small\n  shm_size: 64m\n",
        ),
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}");
    let log = std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt")).unwrap();
    assert!(log.contains("data 1,2"), "{log}");
    assert!(log.contains("file single file"), "{log}");
    assert!(
        log.contains("flag True rate 1e-3"),
        "YAML 1.1 literals as Azure renders them: {log}"
    );
    assert!(log.contains("uid 1000"), "runs as non-root: {log}");
    assert!(
        log.contains(&format!("memlimit {}", 256 * 1024 * 1024)),
        "{log}"
    );
}

#[test]
fn an_unknown_instance_type_is_refused_before_anything_runs() {
    let ws = Ws::new();
    ws.write("src/x.txt", "");
    ws.write(
        "job.yml",
        &job_yaml("echo hi", "resources:\n  instance_type: huge\n"),
    );
    let out = ws.tug(&["job", "create", "-f", "job.yml"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("instance type `huge`"), "{stderr}");
    assert!(ws.json(&["job", "list"]).as_array().unwrap().is_empty());
    let snapshots = std::fs::read_dir(ws.path().join(".tug/artifacts/snapshots")).unwrap();
    assert_eq!(snapshots.count(), 0, "nothing uploaded for a refused job");

    // A name that could escape the workspace folder is refused the same way.
    ws.write("job2.yml", &job_yaml("echo hi", "name: ../../escape\n"));
    let out = ws.tug(&["job", "create", "-f", "job2.yml"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be a job name"), "{stderr}");
    assert!(ws.json(&["job", "list"]).as_array().unwrap().is_empty());
}

#[test]
fn an_auto_started_server_exits_when_idle() {
    let ws = Ws::new();
    let out = ws
        .tug_cmd(&["job", "list"])
        .env("TUG_IDLE_TIMEOUT", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let pid = ws.server_pid().expect("started");
    for _ in 0..100 {
        if unsafe { libc::kill(pid, 0) } != 0 {
            assert!(ws.server_log().contains("idle"), "{}", ws.server_log());
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the idle server {pid} did not exit");
}

#[test]
fn a_gpu_instance_type_without_a_gpu_runtime_fails_with_the_fix() {
    let ws = Ws::new();
    let has_nvidia = std::process::Command::new("docker")
        .args(["info", "--format", "{{json .Runtimes}}"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("nvidia"))
        .unwrap_or(false);
    if has_nvidia {
        eprintln!("skipped: this engine has an nvidia runtime");
        return;
    }
    ws.write(
        ".tug/config.yaml",
        "compute:\n  local:\n    instance_types:\n      gpu: {gpu: 1}\n",
    );
    ws.write("src/x.txt", "");
    let id = ws.submit(
        "job.yml",
        &job_yaml("echo hi", "resources:\n  instance_type: gpu\n"),
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Failed");
    assert!(
        v["error"].as_str().unwrap().contains("no `nvidia` runtime"),
        "{v:#}"
    );
    assert!(ws.containers(&ws.workspace_id().unwrap()).is_empty());
}

#[test]
fn an_image_with_its_own_user_can_write_outputs() {
    let ws = Ws::new();
    ws.write("ctx/Dockerfile", &format!("FROM {MINIMAL}\nUSER nobody\n"));
    ws.write("src/x.txt", "");
    let id = ws.submit(
        "job.yml",
        "code: src\ncommand: id -un && echo saved > outputs/result.txt && echo $HOME > $HOME/h && cat $HOME/h\nenvironment:\n  build:\n    path: ctx\n",
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}");
    let log = std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt")).unwrap();
    assert!(log.starts_with("nobody"), "the image's USER is kept: {log}");
    assert_eq!(
        std::fs::read_to_string(ws.run_dir(&id).join("outputs/result.txt")).unwrap(),
        "saved\n"
    );
}

#[test]
fn large_outputs_download_without_the_snapshot_cap_or_ignore_rules() {
    let ws = Ws::new();
    ws.write("src/x.txt", "");
    // 20 MB of output and a .gitignore that must not filter a download.
    let id = ws.submit(
        "job.yml",
        &job_yaml(
            "head -c 20000000 /dev/zero > outputs/big.bin && printf '*.bin\\n' > outputs/.gitignore",
            "",
        ),
    );
    assert_eq!(ws.wait(&id, LIMIT)["status"], "Completed");
    let dl = ws.path().join("dl");
    ws.ok(&["job", "download", &id, "-p", dl.to_str().unwrap()]);
    let big = std::fs::metadata(dl.join("artifacts/outputs/big.bin")).unwrap();
    assert_eq!(big.len(), 20_000_000);
    assert!(dl.join("artifacts/outputs/.gitignore").is_file());
}

/// `tug environment build`: the image a job with the same environment then uses, built
/// from the files alone (no server), a second build a tag lookup, a broken one exit 1
/// with the build's own lines.
#[test]
fn environment_build_makes_the_image_a_job_uses_without_running_anything() {
    let ws = Ws::new();
    let marker = ws
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    ws.write(
        "ctx/Dockerfile",
        &format!("FROM {MINIMAL}\nLABEL test.run={marker}\n"),
    );
    ws.write("env.yml", "name: ctx\nbuild:\n  path: ctx\n");
    let build = |file: &str| {
        let out = ws
            .tug_cmd(&["environment", "build", "-f", file, "-o", "json"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = build("env.yml");
    assert_eq!(code, Some(0), "{out}\n{err}");
    let first: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(first["built"], true, "{first:#}");
    assert!(err.contains("Step "), "build lines on stderr: {err}");
    let hash = first["env_hash"].as_str().unwrap();
    assert_eq!(first["labels"]["tug.env.hash"], hash);
    assert_eq!(first["labels"]["test.run"], marker.as_str());
    assert!(
        first["image"].as_str().unwrap().ends_with(&hash[..24]),
        "{first:#}"
    );
    assert!(first["id"].as_str().unwrap().starts_with("sha256:"));
    assert!(first["size"].as_i64().unwrap() > 1_000_000);
    assert!(ws.server_pid().is_none(), "no server was needed");
    // Where it came from, read back from the engine.
    let shown = ws.json(&["image", "inspect", first["image"].as_str().unwrap()]);
    assert_eq!(shown["env_hash"], hash);
    assert!(
        shown["source"].as_str().unwrap().ends_with("env.yml"),
        "{shown:#}"
    );
    assert_eq!(shown["id"], first["id"]);
    let missing = ws
        .tug_cmd(&["image", "inspect", "tug/env:nothing-here"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no image `tug/env:nothing-here`"));

    let (code, out, _) = build("env.yml");
    assert_eq!(code, Some(0));
    let second: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(second["built"], false);
    assert_eq!(second["image"], first["image"]);
    assert!(second["seconds"].as_f64().unwrap() < 1.0, "{second:#}");

    // A job with the same environment runs on that image, building nothing.
    ws.write("src/x.txt", "");
    let id = ws.submit(
        "job.yml",
        "code: src\ncommand: echo hi\nenvironment:\n  build:\n    path: ctx\n",
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}");
    assert_eq!(v["image"], first["image"]);
    let log = std::fs::read_to_string(ws.run_dir(&id).join("system_logs/build.log")).unwrap();
    assert!(log.starts_with("reused"), "{log}");

    ws.write(
        "bad/Dockerfile",
        &format!("FROM {MINIMAL}\nRUN echo half-way && exit 3\n"),
    );
    ws.write("bad.yml", "name: bad\nbuild:\n  path: bad\n");
    let (code, out, err) = build("bad.yml");
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("half-way") && err.contains("Step 2/"), "{err}");
    assert!(out.is_empty(), "{out}");
}
