//! The digits example end to end, as README's first command runs it: trains, logs
//! accuracy, leaves model.pkl; a second submit after editing train.py builds nothing; then
//! the model is registered, deployed behind an endpoint and invoked.

mod common;

use std::time::Duration;

use common::Ws;

#[test]
fn digits_example_trains_logs_accuracy_and_saves_the_model() {
    common::require_image(common::SKLEARN);
    let ws = Ws::new();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits");
    common::copy_dir(&example, &ws.path().join("digits"));

    let out = ws
        .tug_cmd(&["job", "create", "-f", "digits/train.yml", "--stream"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("accuracy:"),
        "the log streams live: {stdout}"
    );
    assert!(
        stderr.contains("[metric] accuracy = "),
        "metrics shown as logged: {stderr}"
    );
    let statuses: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("[tug] ")?.split_once(": "))
        .filter(|(who, _)| !who.contains(' ') && *who != "outputs")
        .map(|(_, status)| status)
        .collect();
    assert_eq!(
        statuses,
        [
            "Queued",
            "Preparing",
            "Starting",
            "Running",
            "Finalizing",
            "Completed"
        ],
        "every transition is shown once, in order: {stderr}"
    );

    let jobs = ws.json(&["job", "list"]);
    let first = jobs[0]["id"].as_str().unwrap().to_string();
    let v = ws.show(&first);
    assert_eq!(v["status"], "Completed");
    let accuracy = v["metrics"]["accuracy"].as_f64().unwrap();
    assert!(
        accuracy > 0.9,
        "logistic regression on digits scores > 0.9, got {accuracy}"
    );
    let model = ws.run_dir(&first).join("outputs/model.pkl");
    assert!(std::fs::metadata(&model).unwrap().len() > 1000);

    // Edit only the code: the environment image is reused.
    let script = ws.path().join("digits/src/train.py");
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, text.replace("random_state=42", "random_state=7")).unwrap();
    let second = ws.json(&["job", "create", "-f", "digits/train.yml"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let w = ws.wait(&second, Duration::from_secs(300));
    assert_eq!(w["status"], "Completed", "{w:#}");
    assert_eq!(w["image"], v["image"]);
    let build = std::fs::read_to_string(ws.run_dir(&second).join("system_logs/build.log")).unwrap();
    assert!(build.starts_with("reused "), "{build}");

    // README's serving flow: register the trained model, deploy it, invoke the endpoint.
    ws.ok(&[
        "model",
        "create",
        "--name",
        "digits",
        "--path",
        &format!("runs:/{first}/outputs/model.pkl"),
    ]);
    ws.ok(&["online-endpoint", "create", "-f", "digits/endpoint.yml"]);
    let out = ws.tug(&[
        "online-deployment",
        "create",
        "-f",
        "digits/blue.yml",
        "--all-traffic",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = ws.ok(&[
        "online-endpoint",
        "invoke",
        "--name",
        "digits",
        "--request-file",
        "digits/sample-request.json",
    ]);
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["predictions"],
        serde_json::json!([0, 1, 7]),
        "{answer}"
    );
    ws.ok(&["online-endpoint", "delete", "--name", "digits", "--yes"]);
}
