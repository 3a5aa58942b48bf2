//! Azure's own job files (tests/azureml_examples, byte for byte from Azure/azureml-examples)
//! run unedited: their curated environment names resolve to tug's offline stand-ins
//! (images/build-curated.sh), which hold the real MLflow client; a workspace's `curated:`
//! map overrides the built-ins; an image without MLflow gets the stdlib fallback; a name
//! with no stand-in is refused before anything is created.

mod common;

use std::path::Path;

use common::{MINIMAL, Ws, require_image};

const SKLEARN_STAND_IN: &str = "tug/curated:sklearn";

/// Copies the example folder `cli/jobs/basics` into the workspace, unchanged.
fn basics(ws: &Ws) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/azureml_examples/cli/jobs/basics");
    for rel in [
        "hello-mlflow.yml",
        "hello-sweep.yml",
        "src/hello-mlflow.py",
        "src/hello-sweep.py",
    ] {
        ws.write(rel, &std::fs::read_to_string(from.join(rel)).unwrap());
    }
}

fn create(ws: &Ws, file: &str) -> (String, String) {
    let out = ws
        .tug_cmd(&["job", "create", "-f", file, "--stream"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{file}:\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        ws.server_log()
    );
    (stdout, stderr)
}

fn only_job(ws: &Ws) -> serde_json::Value {
    let jobs = ws.json(&["job", "list"]);
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    ws.show(jobs[0]["id"].as_str().unwrap())
}

fn assert_hello_mlflow(ws: &Ws, v: &serde_json::Value) {
    let id = v["id"].as_str().unwrap();
    assert_eq!(v["status"], "Completed", "{v:#}");
    assert_eq!(v["params"]["hello_param"], "world", "{v:#}");
    let m = v["metrics"]["hello_metric"].as_f64().expect("hello_metric");
    assert!((0.0..1.0).contains(&m), "{m}");
    assert_eq!(
        std::fs::read_to_string(ws.run_dir(id).join("helloworld.txt")).unwrap(),
        "hello world\n",
        "the artifact is where the MLflow client puts it"
    );
}

#[test]
fn hello_mlflow_and_hello_sweep_run_unedited_on_the_stand_in() {
    require_image(SKLEARN_STAND_IN);
    let ws = Ws::new();
    basics(&ws);

    create(&ws, "hello-mlflow.yml");
    let v = only_job(&ws);
    assert_hello_mlflow(&ws, &v);
    let log = std::fs::read_to_string(
        ws.run_dir(v["id"].as_str().unwrap())
            .join("user_logs/std_log.txt"),
    )
    .unwrap();
    assert!(
        !log.contains("tug fallback"),
        "the stand-in has the real client: {log}"
    );

    // The sweep's primary metric comes from `mlflow.log_metric`.
    let (out, _) = create(&ws, "hello-sweep.yml");
    let sweep = ws.show(&common::sweep::sweep_id(&out));
    assert_eq!(sweep["status"], "Completed", "{sweep:#}");
    let trials = common::sweep::trials(&sweep);
    assert_eq!(trials.len(), 4, "{sweep:#}");
    let values: Vec<f64> = trials
        .iter()
        .map(|t| {
            t["value"]
                .as_f64()
                .expect("every trial reports random_metric")
        })
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "goal minimize ranks the smallest first: {values:?}"
    );
    assert_eq!(sweep["sweep"]["best_trial"], trials[0]["id"]);
    for t in &trials {
        assert!(["hello", "world", "hello_world"].contains(&t["params"]["B"].as_str().unwrap()));
    }

    // The map, with the stand-in the jobs used shown as built.
    let map = ws.json(&["environment", "list", "--curated"]);
    let sklearn = map
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entry"]["key"] == "sklearn-*")
        .expect("the built-in sklearn entry");
    assert_eq!(sklearn["entry"]["stand_in"], "image: tug/curated:sklearn");
    assert_eq!(sklearn["status"], "built");
}

#[test]
fn the_workspace_map_wins_and_an_image_without_mlflow_gets_the_fallback() {
    require_image(MINIMAL);
    let ws = Ws::new();
    basics(&ws);
    ws.ok(&["job", "list"]); // creates the workspace and its default config
    let config = ws.path().join(".tug/config.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "curated:\n  AzureML-sklearn-1.5: {{image: {MINIMAL}}}\n"
    ));
    std::fs::write(&config, text).unwrap();

    create(&ws, "hello-mlflow.yml");
    let v = only_job(&ws);
    assert_hello_mlflow(&ws, &v);
    // Debian's minimal Python has no mlflow: the stdlib fallback did the logging.
    let check = std::process::Command::new("docker")
        .args(["run", "--rm", MINIMAL, "python3", "-c", "import mlflow"])
        .output()
        .unwrap();
    assert!(!check.status.success(), "the base really has no mlflow");
}

#[test]
fn a_curated_name_without_a_stand_in_is_refused_with_the_fix() {
    let ws = Ws::new();
    ws.write("src/train.py", "print('x')\n");
    ws.write(
        "job.yml",
        "command: python train.py\ncode: src\nenvironment: azureml:AzureML-pytorch-2.0-cuda11.7@latest\n",
    );
    let out = ws.tug(&["job", "create", "-f", "job.yml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("job.yml"), "{err}");
    assert!(err.contains("is an Azure ML curated environment"), "{err}");
    assert!(
        err.contains("curated:\n"),
        "the fix is the config entry: {err}"
    );
    assert!(
        err.contains("pytorch-2.0-cuda11.7: {environment: azureml:"),
        "{err}"
    );
    assert_eq!(
        ws.json(&["job", "list"]),
        serde_json::json!([]),
        "nothing created"
    );

    // A broken map entry names itself.
    ws.write(
        ".tug/config.yaml",
        "curated:\n  pytorch-*: {image: a, environment: 'azureml:b@latest'}\n",
    );
    let out = ws.tug(&["job", "create", "-f", "job.yml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("`curated.pytorch-*`: give exactly one"),
        "{err}"
    );
}

/// Azure's iris job (its script calls `mlflow.autolog()` and nothing else): with the data
/// input pointed at a local copy (the wasbs URL needs the network) and `compute` at the local
/// engine, autolog's params,
/// training metrics and model land in the run, and the model registers from the job's
/// artifacts by Azure's URI.
#[test]
fn autolog_logs_the_iris_model_and_it_registers_from_the_job() {
    require_image(SKLEARN_STAND_IN);
    let ws = Ws::new();
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/azureml_examples/cli/jobs/single-step/scikit-learn/iris");
    for rel in ["job.yml", "src/main.py"] {
        ws.write(rel, &std::fs::read_to_string(from.join(rel)).unwrap());
    }
    ws.write("iris.csv", &common::iris_csv());
    let out = ws
        .tug_cmd(&[
            "job",
            "create",
            "-f",
            "job.yml",
            "--set",
            "inputs.iris_csv.path=./iris.csv",
            "--set",
            "compute=local",
            "--stream",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = only_job(&ws);
    let id = v["id"].as_str().unwrap();
    let log =
        std::fs::read_to_string(ws.run_dir(id).join("user_logs/std_log.txt")).unwrap_or_default();
    assert!(
        out.status.success() && v["status"] == "Completed",
        "{v:#}\n{log}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["experiment"], "sklearn-iris-example");
    // autolog's own names: the estimator's params and training metrics.
    assert_eq!(v["params"]["C"], "0.8", "{v:#}");
    assert_eq!(v["params"]["kernel"], "rbf", "{v:#}");
    let f1 = v["metrics"]["training_f1_score"]
        .as_f64()
        .unwrap_or_else(|| panic!("training_f1_score: {v:#}"));
    assert!(f1 > 0.9, "{f1}");
    assert!(
        ws.run_dir(id).join("model/MLmodel").is_file(),
        "autolog's model is among the run's artifacts: {log}"
    );

    let path = format!("azureml://jobs/{id}/outputs/artifacts/paths/model");
    let model = ws.json(&[
        "model",
        "create",
        "--name",
        "iris-svc",
        "--type",
        "mlflow_model",
        "--path",
        &path,
    ]);
    assert_eq!(model["name"], "iris-svc", "{model:#}");
    assert_eq!(model["version"], "1", "{model:#}");
}
