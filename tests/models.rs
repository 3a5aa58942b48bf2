//! The model registry through the real CLI: registering a run's outputs and local files,
//! versions, lineage, `latest`, archive, download, and refusals that store nothing.

mod common;

use std::time::Duration;

use common::Ws;

fn trained(ws: &Ws) -> String {
    common::require_image(common::MINIMAL);
    ws.write(
        "src/train.py",
        "import os\n\
         os.makedirs('outputs/model', exist_ok=True)\n\
         open('outputs/model.pkl', 'wb').write(b'weights-v1')\n\
         open('outputs/model/config.json', 'w').write('{\"k\": 3}')\n",
    );
    let id = ws.submit("job.yml", &common::job_yaml("python3 train.py", ""));
    let v = ws.wait(&id, Duration::from_secs(120));
    assert_eq!(v["status"], "Completed", "{v}");
    id
}

#[test]
fn run_outputs_and_local_files_become_versions_with_lineage() {
    let ws = Ws::new();
    let run = trained(&ws);

    let v1 = ws.json(&[
        "model",
        "create",
        "--name",
        "digits",
        "--path",
        &format!("runs:/{run}/outputs/model.pkl"),
    ]);
    assert_eq!(v1["version"], "1");
    assert_eq!(v1["job_id"], run.as_str(), "lineage to the run");
    assert_eq!(v1["experiment"], "tests");
    assert_eq!(v1["is_file"], true);

    // The azureml:// spelling of the same output, as Azure writes it.
    let v2 = ws.json(&[
        "model",
        "create",
        "--name",
        "digits",
        "--path",
        &format!("azureml://jobs/{run}/outputs/artifacts/paths/outputs/model"),
        "--tag",
        "stage=test",
    ]);
    assert_eq!(v2["version"], "2");
    assert_eq!(v2["is_file"], false);
    assert_eq!(v2["tags"]["stage"], "test");

    // A local folder, uploaded.
    ws.write("local/m/weights.bin", "local");
    let other = ws.json(&["model", "create", "--name", "other", "--path", "local/m"]);
    assert_eq!(other["version"], "1");
    assert!(other["job_id"].is_null());

    // A model file, Azure's format, paths relative to the file.
    ws.write("assets/weights/w.bin", "w");
    ws.write(
        "assets/model.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\n\
         name: from-file\n\
         path: weights\n\
         type: custom_model\n\
         description: registered from a file\n\
         tags:\n  source: yaml\n",
    );
    let f = ws.json(&["model", "create", "-f", "assets/model.yml"]);
    assert_eq!(f["name"], "from-file");
    assert_eq!(f["description"], "registered from a file");
    assert_eq!(f["tags"]["source"], "yaml");
    assert_eq!(f["artifact"], "weights");

    // Latest is the newest; archiving hides it from latest and the list.
    assert_eq!(
        ws.json(&["model", "show", "--name", "digits"])["version"],
        "2"
    );
    ws.ok(&["model", "archive", "--name", "digits", "--version", "2"]);
    assert_eq!(
        ws.json(&["model", "show", "--name", "digits"])["version"],
        "1"
    );
    let listed = ws.json(&["model", "list", "--name", "digits"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let all = ws.json(&["model", "list", "--name", "digits", "--include-archived"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    // Still usable by number, like Azure's archived versions.
    assert_eq!(
        ws.json(&["model", "show", "--name", "digits", "--version", "2"])["archived"],
        true
    );

    // Download gives back the files under their own name.
    let out = ws.path().join("dl");
    ws.ok(&[
        "model",
        "download",
        "--name",
        "digits",
        "--version",
        "2",
        "--download-path",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(out.join("model/config.json")).unwrap(),
        "{\"k\": 3}"
    );
    ws.ok(&[
        "model",
        "download",
        "--name",
        "digits",
        "--version",
        "1",
        "--download-path",
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(out.join("model.pkl")).unwrap(), b"weights-v1");
}

#[test]
fn refused_registrations_store_nothing() {
    let ws = Ws::new();
    let run = trained(&ws);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--name".into(),
                "digits".into(),
                "--path".into(),
                format!("runs:/{run}/outputs/missing.pkl"),
            ],
            "has no output",
        ),
        (
            vec![
                "--name".into(),
                "bad name".into(),
                "--path".into(),
                format!("runs:/{run}/outputs/model.pkl"),
            ],
            "not a valid model name",
        ),
        (
            vec![
                "--name".into(),
                "digits".into(),
                "--path".into(),
                "runs:/no-such-run/outputs/model.pkl".into(),
            ],
            "no-such-run",
        ),
        (
            vec![
                "--name".into(),
                "digits".into(),
                "--path".into(),
                "does/not/exist.pkl".into(),
            ],
            "does not exist",
        ),
        (
            vec![
                "--name".into(),
                "digits".into(),
                "--path".into(),
                "https://example.com/m.pkl".into(),
            ],
            "is not on this machine",
        ),
        (
            vec![
                "--name".into(),
                "digits".into(),
                "--path".into(),
                format!("runs:/{run}/outputs/model.pkl"),
                "--version".into(),
                "0".into(),
            ],
            "positive whole number",
        ),
    ];
    for (args, expect) in cases {
        let mut full = vec!["model", "create"];
        full.extend(args.iter().map(String::as_str));
        let out = ws.tug(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must be refused");
        assert!(
            stderr.contains(expect),
            "{args:?}: expected `{expect}` in: {stderr}"
        );
    }
    assert_eq!(
        ws.json(&["model", "list", "--include-archived"]),
        serde_json::json!([])
    );
    // Nothing half-written in the registry folder either.
    let models = ws.path().join(".tug/artifacts/models");
    let left: Vec<_> = std::fs::read_dir(&models)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");

    // An explicit version that exists is refused, and the first one stays as it was.
    let path = format!("runs:/{run}/outputs/model.pkl");
    ws.ok(&[
        "model",
        "create",
        "--name",
        "digits",
        "--path",
        &path,
        "--version",
        "3",
    ]);
    let out = ws.tug(&[
        "model",
        "create",
        "--name",
        "digits",
        "--path",
        &path,
        "--version",
        "3",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(ws.json(&["model", "list"]).as_array().unwrap().len(), 1);
    // The next automatic version follows the highest number.
    assert_eq!(
        ws.json(&["model", "create", "--name", "digits", "--path", &path])["version"],
        "4"
    );
}
