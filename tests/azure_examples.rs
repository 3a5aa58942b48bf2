//! Azure ML's hello-world job files (tests/spec_corpus/good, shaped after
//! Azure/azureml-examples cli/jobs/basics) run unchanged but for the image, which
//! `--set` points at an offline base image since no registry is reachable here.

mod common;

use std::time::Duration;

use common::{MINIMAL, Ws};

fn run_example(ws: &Ws, file: &str) -> (String, String) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/spec_corpus/good")
        .join(file);
    std::fs::copy(&src, ws.path().join(file)).unwrap();
    let image = format!("environment.image={MINIMAL}");
    let out = ws
        .tug_cmd(&["job", "create", "-f", file, "--set", &image, "--stream"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{file}:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn hello_world_family_runs_as_on_azure() {
    let ws = Ws::new();
    std::fs::create_dir_all(ws.path().join("src")).unwrap();
    ws.write("src/hello.py", "print('hi')\n");

    assert!(
        run_example(&ws, "hello-world.job.yml")
            .0
            .contains("hello world")
    );
    assert!(
        run_example(&ws, "hello-world-env-var.job.yml")
            .0
            .contains("hello world")
    );
    let (out, _) = run_example(&ws, "hello-world-input.job.yml");
    assert!(out.contains("hello world\n42"), "{out}");
    assert!(
        run_example(&ws, "hello-world-org.job.yml")
            .0
            .contains("hello world")
    );
    assert!(
        run_example(&ws, "hello-code.job.yml")
            .0
            .contains("hello.py"),
        "code is the cwd"
    );
    run_example(&ws, "hello-world-output-data.job.yml");

    let jobs = ws.json(&["job", "list"]);
    let org = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["experiment"] == "hello-world-example")
        .expect("experiment_name is kept");
    assert_eq!(org["display_name"], "hello-world-example");
    assert_eq!(org["tags"]["hello"], "world");
    let out_job = &jobs[0];
    let file = ws
        .run_dir(out_job["id"].as_str().unwrap())
        .join("named-outputs/hello_output/helloworld.txt");
    assert_eq!(std::fs::read_to_string(file).unwrap(), "hello world\n");
}

#[test]
fn an_unreachable_registry_image_fails_with_the_offline_fix() {
    let ws = Ws::new();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/spec_corpus/good/hello-world.job.yml");
    std::fs::copy(&src, ws.path().join("job.yml")).unwrap();
    let v = ws.json(&["job", "create", "-f", "job.yml"]);
    let done = ws.wait(v["id"].as_str().unwrap(), Duration::from_secs(120));
    assert_eq!(done["status"], "Failed");
    let err = done["error"].as_str().unwrap();
    assert!(err.contains("library/python:latest"), "{err}");
    assert!(
        err.contains("docker save") && err.contains("images/build-base.sh"),
        "{err}"
    );
}
