//! Conformance: the real Azure ML example files of `azureml-contract.md` §10 (byte for byte
//! in tests/azureml_examples), run with nothing in them changed. What an offline machine
//! lacks is given to tug the way an air-gapped user gives it, in the workspace and never in
//! the file:
//!
//! - `compute: azureml:cpu-cluster` is a Docker compute target named `cpu-cluster`;
//! - Docker Hub's `python` image is the local `tug/python:3.11-minimal` (`images:`);
//! - Azure's public datasets are handed to the data cache (`tug data cache add`);
//! - curated environments are tug's built-in stand-ins.
//!
//! README's conformance table is this file's cases; keep the two in step.

mod common;

use std::path::Path;

use common::{MINIMAL, Ws, require_image};
use serde_json::Value;

const EXAMPLES: &str = "tests/azureml_examples";
const IRIS_HTTPS: &str = "https://azuremlexamples.blob.core.windows.net/datasets/iris.csv";
const IRIS_WASBS: &str = "wasbs://datasets@azuremlexamples.blob.core.windows.net/iris.csv";
const DIABETES_HTTPS: &str = "https://azuremlexamples.blob.core.windows.net/datasets/diabetes.csv";

/// 120 rows shaped like Azure's diabetes.csv: ten features and a target linear in them.
fn diabetes_csv() -> String {
    let mut s = String::from("age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,target\n");
    for i in 0..120u32 {
        let x: Vec<f64> = (0..10)
            .map(|j| (((i * 31 + j * 17) % 97) as f64 / 97.0) - 0.5)
            .collect();
        let target = 150.0
            + x.iter()
                .enumerate()
                .map(|(j, v)| v * (j as f64 + 1.0) * 20.0)
                .sum::<f64>();
        let cells: Vec<String> = x.iter().map(|v| format!("{v:.4}")).collect();
        s.push_str(&format!("{},{target:.1}\n", cells.join(",")));
    }
    s
}

/// A workspace holding `cli/` as in azureml-examples, set up as an air-gapped site would.
fn site() -> Ws {
    let ws = Ws::new();
    common::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(EXAMPLES)
            .join("cli"),
        &ws.path().join("cli"),
    );
    ws.ok(&["job", "list"]); // creates the workspace and its default config
    let config = ws.path().join(".tug/config.yaml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("compute: {}\n", "compute:\n  cpu-cluster: {type: docker}\n");
    std::fs::write(
        &config,
        format!("{text}images:\n  \"python:*\": {MINIMAL}\n"),
    )
    .unwrap();
    ws.write("data/iris.csv", &common::iris_csv());
    ws.write("data/diabetes.csv", &diabetes_csv());
    for (uri, file) in [
        (IRIS_HTTPS, "data/iris.csv"),
        (IRIS_WASBS, "data/iris.csv"),
        (DIABETES_HTTPS, "data/diabetes.csv"),
    ] {
        ws.ok(&["data", "cache", "add", uri, "--from", file]);
    }
    ws
}

/// `tug job create -f cli/<file> --stream`; returns (exit ok, stdout, stderr).
fn create(ws: &Ws, file: &str) -> (bool, String, String) {
    // Offline even on a connected machine, so the data handed to the cache is what runs
    // (a dead proxy for the https stores; tug's own API is on loopback).
    let out = ws
        .tug_cmd(&["job", "create", "-f", &format!("cli/{file}"), "--stream"])
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The newest run and its log.
fn newest(ws: &Ws) -> (Value, String) {
    let jobs = ws.json(&["job", "list"]);
    let id = jobs.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let log =
        std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt")).unwrap_or_default();
    (ws.show(&id), log)
}

/// Runs `file` unchanged; asserts it completes; returns its run and log.
fn runs(ws: &Ws, file: &str) -> (Value, String) {
    let (ok, stdout, stderr) = create(ws, file);
    let (v, log) = newest(ws);
    assert!(
        ok && v["status"] == "Completed",
        "{file} should run unchanged:\nstdout:\n{stdout}\nstderr:\n{stderr}\nrun: {v:#}\nlog:\n{log}\nserver:\n{}",
        ws.server_log()
    );
    (v, log)
}

#[test]
fn the_hello_world_family_runs_unchanged() {
    let ws = site();
    let (_, log) = runs(&ws, "jobs/basics/hello-world.yml");
    assert!(log.contains("hello world"), "{log}");
    let (v, log) = runs(&ws, "jobs/basics/hello-world-org.yml");
    assert!(log.contains("hello world"), "{log}");
    assert_eq!(v["experiment"], "hello-world-example");
    assert_eq!(v["tags"]["hello"], "world", "{v:#}");
    let (_, log) = runs(&ws, "jobs/basics/hello-world-input.yml");
    assert!(log.contains("hello world\n42"), "{log}");
    let (_, log) = runs(&ws, "jobs/basics/hello-world-env-var.yml");
    assert!(log.contains("hello world"), "{log}");
    let (v, _) = runs(&ws, "jobs/basics/hello-world-output.yml");
    let dir = ws.run_dir(v["id"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(dir.join("outputs/helloworld.txt")).unwrap(),
        "hello world\n"
    );
    let (v, _) = runs(&ws, "jobs/basics/hello-world-output-data.yml");
    let out = ws.path().join("named");
    ws.ok(&[
        "job",
        "download",
        v["id"].as_str().unwrap(),
        "--all",
        "-p",
        out.to_str().unwrap(),
    ]);
    let found = std::process::Command::new("find")
        .arg(&out)
        .args(["-name", "helloworld.txt"])
        .output()
        .unwrap();
    assert!(!found.stdout.is_empty(), "the named output holds the file");
    let (_, log) = runs(&ws, "jobs/basics/hello-code.yml");
    assert!(
        log.contains("hello-mlflow.py") && log.contains("hello-iris.py"),
        "code is the cwd: {log}"
    );
}

#[test]
fn the_data_and_model_jobs_run_unchanged() {
    require_image("tug/curated:sklearn");
    let ws = site();
    let (_, log) = runs(&ws, "jobs/basics/hello-iris-file.yml");
    assert!(
        log.contains("--iris-csv: /tug/inputs/iris_csv/iris.csv"),
        "{log}"
    );
    assert!(log.contains("Iris-setosa"), "{log}");

    // An MLflow model in, MLflow 3's skops-format model out.
    let (v, log) = runs(&ws, "jobs/basics/hello-model-as-output.yml");
    let out = ws.path().join("model-out");
    ws.ok(&[
        "job",
        "download",
        v["id"].as_str().unwrap(),
        "--output-name",
        "output_folder",
        "-p",
        out.to_str().unwrap(),
    ]);
    let found = std::process::Command::new("find")
        .arg(&out)
        .args(["-name", "MLmodel"])
        .output()
        .unwrap();
    let found = String::from_utf8_lossy(&found.stdout);
    assert!(found.contains("my_model/MLmodel"), "{found}\n{log}");

    // autolog on the stand-in: the estimator's params and training metrics.
    let (v, _) = runs(&ws, "jobs/single-step/scikit-learn/iris/job.yml");
    assert_eq!(v["params"]["kernel"], "rbf", "{v:#}");
    assert!(
        v["metrics"]["training_f1_score"].as_f64().unwrap() > 0.9,
        "{v:#}"
    );
    let (v, _) = runs(&ws, "jobs/single-step/scikit-learn/diabetes/job.yml");
    assert!(
        v["metrics"]["training_r2_score"].as_f64().unwrap() > 0.9,
        "{v:#}"
    );
}

#[test]
fn the_lightgbm_jobs_and_the_sweeps_run_unchanged() {
    require_image("tug/curated:lightgbm");
    let ws = site();
    let (v, _) = runs(&ws, "jobs/single-step/lightgbm/iris/job.yml");
    assert!(
        v["metrics"]["test-multi_logloss"].as_f64().is_some(),
        "{v:#}"
    );

    let (ok, out, err) = create(&ws, "jobs/basics/hello-sweep.yml");
    assert!(ok, "{out}\n{err}");
    let sweep = ws.show(&common::sweep::sweep_id(&out));
    assert_eq!(sweep["status"], "Completed", "{sweep:#}");
    assert_eq!(common::sweep::trials(&sweep).len(), 4, "{sweep:#}");

    // 20 trials whose primary metric has a hyphen and comes from LightGBM's autolog.
    let (ok, out, err) = create(&ws, "jobs/single-step/lightgbm/iris/job-sweep.yml");
    assert!(ok, "{out}\n{err}");
    let sweep = ws.show(&common::sweep::sweep_id(&out));
    assert_eq!(sweep["status"], "Completed", "{sweep:#}");
    let trials = common::sweep::trials(&sweep);
    assert_eq!(trials.len(), 20, "{sweep:#}");
    assert!(
        trials.iter().all(|t| t["value"].as_f64().is_some()),
        "{sweep:#}"
    );
}

/// `endpoints/online/managed/sample`: the endpoint, then the deployment that names the
/// curated sklearn environment, scored with the sample's request; Azure's docs give the same
/// two predictions. The conda-pinned deployment needs an image from mcr.microsoft.com: it
/// fails with the fix and the running deployment keeps serving.
#[test]
fn the_managed_online_sample_deploys_on_a_curated_environment_and_scores() {
    require_image("tug/curated:sklearn");
    let ws = site();
    let dir = "cli/endpoints/online/managed/sample";
    ws.ok(&[
        "online-endpoint",
        "create",
        "-f",
        &format!("{dir}/endpoint.yml"),
    ]);
    let out = ws.tug(&[
        "online-deployment",
        "create",
        "-f",
        &format!("{dir}/blue-deployment-with-curated-env.yml"),
        "--all-traffic",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        ws.server_log()
    );
    let request = format!("{dir}/sample-request.json");
    let invoke = [
        "online-endpoint",
        "invoke",
        "-n",
        "my-endpoint",
        "--request-file",
        &request,
    ];
    let answer: Value = serde_json::from_str(ws.ok(&invoke).trim()).unwrap();
    let got: Vec<f64> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let want = [11055.977245525679, 4503.079536107787];
    assert!(
        got.len() == 2 && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6),
        "{got:?}"
    );

    let out = ws.tug(&[
        "online-deployment",
        "update",
        "-f",
        &format!("{dir}/blue-deployment.yml"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest")
            && err.contains("docker load"),
        "{err}"
    );
    assert!(ws.ok(&invoke).contains("11055.977"), "still serving");
    ws.ok(&["online-endpoint", "delete", "-n", "my-endpoint"]);
}

const NESTED: &str = "jobs/pipelines-with-components/pipeline_with_pipeline_component/pipeline_with_train_eval_pipeline_component/pipeline.yml";

/// Azure's pipeline files, components and bindings included, run as written; a resubmit
/// of one reuses every step.
#[test]
fn pipeline_files_run_their_steps_in_order() {
    let ws = site();
    for (file, steps) in [
        (
            "jobs/basics/hello-pipeline-io.yml",
            &["hello_job", "world_job"][..],
        ),
        ("jobs/basics/hello-pipeline-abc.yml", &["a", "b", "c"]),
        (
            "jobs/basics/hello-pipeline-customize-output-file.yml",
            &["hello_world"],
        ),
        (
            "jobs/pipelines-with-components/basics/3b_pipeline_with_data/pipeline.yml",
            &["component_a", "component_b", "component_c"],
        ),
        (
            NESTED,
            &[
                "compare",
                "train_and_evaluate_model1.evaluate_job",
                "train_and_evaluate_model1.score_job",
                "train_and_evaluate_model1.train_job",
                "train_and_evaluate_model2.evaluate_job",
                "train_and_evaluate_model2.score_job",
                "train_and_evaluate_model2.train_job",
            ],
        ),
    ] {
        let (ok, out, err) = create(&ws, file);
        assert!(ok, "{file}:\n{out}\n{err}");
        let (shown, _) = newest(&ws);
        assert_eq!(shown["status"], "Completed", "{file}: {shown:#}");
        let states: Vec<(&str, &str)> = shown["pipeline"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["step"].as_str().unwrap(), s["state"].as_str().unwrap()))
            .collect();
        if file.contains("customize-output-file") {
            // Its pipeline output's `path:` on workspaceblobstore, `${{name}}` the pipeline.
            let id = shown["id"].as_str().unwrap();
            let written = ws.path().join(format!(
                ".tug/datastores/workspaceblobstore/{id}/hello_world.txt"
            ));
            assert_eq!(
                std::fs::read_to_string(&written).unwrap_or_default(),
                "world\n",
                "{}",
                written.display()
            );
        }
        let want: Vec<(&str, &str)> = steps.iter().map(|s| (*s, "completed")).collect();
        let mut sorted = states;
        sorted.sort();
        let mut want_sorted = want;
        want_sorted.sort();
        assert_eq!(sorted, want_sorted, "{file}: {shown:#}");
    }
    // The nested pipeline: each train step got its own learning rate through the pipeline
    // component, and compare read both evaluations and wrote the pipeline's outputs.
    let (shown, _) = newest(&ws);
    assert_eq!(shown["display_name"], "pipeline_with_pipeline_component");
    let run_of = |step: &str| {
        shown["pipeline"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == step)
            .unwrap()["run"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let log = |step: &str| {
        std::fs::read_to_string(ws.run_dir(&run_of(step)).join("user_logs/std_log.txt"))
            .unwrap_or_default()
    };
    assert!(log("train_and_evaluate_model1.train_job").contains("Learning rate: 0.1\n"));
    assert!(log("train_and_evaluate_model2.train_job").contains("Learning rate: 0.01\n"));
    let compare = ws.run_dir(&run_of("compare")).join("named-outputs");
    assert!(compare.join("best_model").is_dir() && compare.join("best_result").is_dir());
    // hello-pipeline-io: world_job reads the file hello_job wrote.
    let (ok, out, err) = create(&ws, "jobs/basics/hello-pipeline-io.yml");
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("reused"),
        "an unchanged resubmit reuses: {out}"
    );
    // A reused step's output still goes to the new pipeline's `path:`.
    let (ok, out, err) = create(&ws, "jobs/basics/hello-pipeline-customize-output-file.yml");
    assert!(ok && out.contains("0 ran, 1 reused"), "{out}\n{err}");
    let (shown, _) = newest(&ws);
    let id = shown["id"].as_str().unwrap();
    let written = ws.path().join(format!(
        ".tug/datastores/workspaceblobstore/{id}/hello_world.txt"
    ));
    assert_eq!(
        std::fs::read_to_string(&written).unwrap_or_default(),
        "world\n",
        "{}",
        written.display()
    );
}

/// Azure's schedule files are read as written (Windows zone names, cron and recurrence,
/// `create_job` overrides with `${{name}}`); a fire of the one with settings runs Azure's
/// pipeline with its overrides applied.
#[test]
fn schedule_files_are_read_and_fire_their_pipeline() {
    let ws = site();
    for (file, name) in [
        (
            "schedules/cron-job-schedule.yml",
            "simple_cron_job_schedule",
        ),
        (
            "schedules/cron-with-settings-job-schedule.yml",
            "cron_with_settings_job_schedule",
        ),
        (
            "schedules/recurrence-job-schedule.yml",
            "simple_recurrence_job_schedule",
        ),
    ] {
        let out = ws.ok(&["schedule", "create", "-f", &format!("cli/{file}")]);
        assert!(out.contains(&format!("Created schedule {name}")), "{out}");
        let v = ws.json(&["schedule", "show", name]);
        assert_eq!(v["enabled"], true);
        assert_eq!(v["time_zone"], "America/Los_Angeles", "{v:#}");
        assert!(v["next_fire"].is_string(), "{v:#}");
    }
    let fire = ws.json(&["schedule", "trigger", "cron_with_settings_job_schedule"]);
    let run = fire["run_id"].as_str().unwrap().to_string();
    let v = ws.wait(&run, std::time::Duration::from_secs(600));
    assert_eq!(v["status"], "Completed", "{v:#}");
    assert_eq!(v["pipeline"]["continue_on_step_failure"], true, "{v:#}");
    assert_eq!(
        v["submission"]["tags"]["schedule"], "cron_with_settings_schedule",
        "{v:#}"
    );
    let log = std::fs::read_to_string(
        ws.run_dir(&format!("{run}_a"))
            .join("user_logs/std_log.txt"),
    )
    .unwrap();
    assert!(
        log.contains(&format!("hello {run}")),
        "`${{{{name}}}}` is the run: {log}"
    );
    for name in [
        "simple_cron_job_schedule",
        "cron_with_settings_job_schedule",
        "simple_recurrence_job_schedule",
    ] {
        ws.ok(&["schedule", "disable", name]);
    }
}

#[test]
fn what_needs_the_network_fails_with_the_reason() {
    let ws = site();
    // The Dockerfile pulls python:3.8 and pip-installs from PyPI: it needs the network
    // (where the engine reaches Docker Hub, it builds and runs instead).
    let (ok, _, _) = create(
        &ws,
        "jobs/single-step/scikit-learn/iris/job-docker-context.yml",
    );
    let (v, _) = newest(&ws);
    if ok {
        assert_eq!(v["status"], "Completed", "{v:#}");
    } else {
        assert_eq!(v["status"], "Failed", "{v:#}");
        let err = v["error"].as_str().unwrap();
        assert!(
            err.contains("`python:3.8` is not on this engine") && err.contains("docker load"),
            "{err}"
        );
    }

    // The sweep-step pipeline runs as written: its trials get Azure's sampled values, but
    // each first runs `pip install 'mlflow<2.19'`, which needs PyPI. pip is told not to
    // retry (the site's environment, not the file), so the offline failure comes fast.
    let file = "jobs/pipelines-with-components/pipeline_with_hyperparameter_sweep/pipeline.yml";
    let out = ws
        .tug_cmd(&[
            "job",
            "create",
            "-f",
            &format!("cli/{file}"),
            "--stream",
            "--set",
            "jobs.sweep_step.environment_variables.PIP_RETRIES=0",
            "--set",
            "jobs.sweep_step.environment_variables.PIP_TIMEOUT=2",
        ])
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    let (v, _) = newest(&ws);
    let streamed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(v["kind"], "pipeline", "{streamed}\n{v:#}");
    assert_eq!(v["status"], "Failed", "{streamed}\n{v:#}");
    let steps = v["pipeline"]["steps"].as_array().unwrap();
    let state = |name: &str| {
        steps.iter().find(|s| s["step"] == name).unwrap()["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state("sweep_step"), "failed", "{v:#}");
    assert_eq!(state("predict_step"), "skipped", "{v:#}");
    let sweep_id = steps[0]["run"].as_str().unwrap();
    let sweep = ws.show(sweep_id);
    assert!(
        sweep["error"]
            .as_str()
            .unwrap()
            .contains("the first 3 trials failed"),
        "{sweep:#}"
    );
    // 3 at once; one that fails frees its place for the next until 3 have failed.
    let trials = sweep["sweep"]["trials"].as_array().unwrap();
    assert!((3..=5).contains(&trials.len()), "{sweep:#}");
    for t in trials {
        let (c, coef0) = (
            t["params"]["c_value"].as_f64().unwrap(),
            t["params"]["coef0"].as_f64().unwrap(),
        );
        assert!(
            (0.5..=0.9).contains(&c) && (0.1..=1.0).contains(&coef0),
            "{t:#}"
        );
        let kernel = t["params"]["kernel"].as_str().unwrap();
        assert!(["rbf", "linear", "poly"].contains(&kernel), "{t:#}");
        let id = t["id"].as_str().unwrap();
        let run = ws.show(id);
        let command = run["submission"]["command"].as_str().unwrap();
        assert!(
            command.contains(&format!("--kernel {kernel} "))
                && command.contains("--degree 3 ")
                && command.contains("--shrinking False "),
            "{command}"
        );
        // One proposed as the third failure came is canceled, maybe before it started.
        if run["status"] == "Failed" {
            let log = std::fs::read_to_string(ws.run_dir(id).join("user_logs/std_log.txt"))
                .unwrap_or_default();
            assert!(log.contains("mlflow<2.19"), "{log}");
        }
    }
    let failed = trials
        .iter()
        .filter(|t| ws.show(t["id"].as_str().unwrap())["status"] == "Failed");
    assert_eq!(failed.count(), 3, "{sweep:#}");
}
