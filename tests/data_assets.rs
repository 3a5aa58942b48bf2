//! Data assets and datastores on the real engine: `tug data create` copies local data into
//! the workspace datastore, so a version keeps its bytes when the original changes; inputs
//! name `azureml:<data>:<version>` and `@latest`; a `uri_file` asset mounts its file; a
//! wrong type or version is refused before anything runs; `azureml://datastores/...`
//! paths of the workspace's own datastore and of a `path:` datastore are read in place;
//! outputs land at Azure's default datastore path and at the `path:` they give.

mod common;

use std::time::Duration;

use common::{MINIMAL, Ws};

const LIMIT: Duration = Duration::from_secs(120);

/// Runs a job that prints `file` of input `d` (`reference`, of `kind`); returns its log.
fn cat(ws: &Ws, kind: &str, reference: &str, file: &str) -> String {
    let sep = if file.is_empty() { "" } else { "/" };
    let id = ws.submit(
        "cat.yml",
        &format!(
            "command: cat ${{{{inputs.d}}}}{sep}{file}\nenvironment:\n  image: {MINIMAL}\ninputs:\n  d:\n    type: {kind}\n    path: {reference}\n"
        ),
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}\n{}", ws.server_log());
    std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt")).unwrap()
}

#[test]
fn data_asset_versions_keep_their_bytes_and_resolve_in_inputs() {
    let ws = Ws::new();
    ws.write("raw/train.csv", "first\n");
    let out = ws.ok(&[
        "data",
        "create",
        "--name",
        "digits",
        "--type",
        "uri_folder",
        "--path",
        "raw",
    ]);
    assert!(out.contains("Registered data digits version 1"), "{out}");
    assert!(
        out.contains("azureml://datastores/workspaceblobstore/paths/LocalUpload/"),
        "{out}"
    );
    // The original changes; version 1 still holds what was registered.
    ws.write("raw/train.csv", "second\n");
    assert!(cat(&ws, "uri_folder", "azureml:digits:1", "train.csv").contains("first"));
    let out = ws.ok(&["data", "create", "--name", "digits", "--path", "raw"]);
    assert!(out.contains("version 2"), "{out}");
    // Unchanged: no new version.
    let out = ws.ok(&["data", "create", "--name", "digits", "--path", "raw"]);
    assert!(out.contains("already registered"), "{out}");
    assert!(cat(&ws, "uri_folder", "azureml:digits@latest", "train.csv").contains("second"));

    // From an Azure data file, one file.
    ws.write("one.csv", "just one\n");
    ws.write(
        "one.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/data.schema.json\nname: one_file\ntype: uri_file\npath: ./one.csv\ndescription: a single file\n",
    );
    ws.ok(&["data", "create", "-f", "one.yml"]);
    assert!(cat(&ws, "uri_file", "azureml:one_file:1", "").contains("just one"));
    let shown = ws.json(&["data", "show", "-n", "one_file"]);
    assert_eq!(shown["type"], "uri_file");
    assert_eq!(ws.json(&["data", "list"]).as_array().unwrap().len(), 3);

    // Refused before anything runs: a folder asset on a file input, a missing version.
    let before = ws.json(&["job", "list"]).as_array().unwrap().len();
    for (kind, reference, says) in [
        (
            "uri_file",
            "azureml:digits:1",
            "is `uri_folder`, but the input is `type: uri_file`",
        ),
        ("uri_folder", "azureml:digits:7", "no data asset `digits:7`"),
    ] {
        ws.write(
            "bad.yml",
            &format!(
                "command: ls ${{{{inputs.d}}}}\nenvironment:\n  image: {MINIMAL}\ninputs:\n  d:\n    type: {kind}\n    path: {reference}\n"
            ),
        );
        let out = ws.tug(&["job", "create", "-f", "bad.yml"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && err.contains("bad.yml"), "{err}");
    }
    assert_eq!(ws.json(&["job", "list"]).as_array().unwrap().len(), before);
}

#[test]
fn datastore_paths_on_this_host_are_read_in_place() {
    let ws = Ws::new();
    ws.write("raw/a.txt", "in the workspace store\n");
    let out = ws.ok(&["data", "create", "--name", "a", "--path", "raw"]);
    let uri = out
        .split_whitespace()
        .find(|w| w.starts_with("azureml://datastores/"))
        .unwrap()
        .trim_end_matches(';')
        .to_string();
    assert!(cat(&ws, "uri_folder", &uri, "a.txt").contains("in the workspace store"));

    // A shared folder as a named datastore.
    let shared = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(shared.path().join("iris")).unwrap();
    std::fs::write(shared.path().join("iris/iris.csv"), "5.1,3.5\n").unwrap();
    let config = ws.path().join(".tug/config.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}datastores:\n  shared: {{path: {}}}\n",
            shared.path().display()
        ),
    )
    .unwrap();
    let list = ws.ok(&["datastore", "list"]);
    assert!(
        list.contains("workspaceblobstore") && list.contains("shared"),
        "{list}"
    );
    assert!(
        cat(
            &ws,
            "uri_file",
            "azureml://datastores/shared/paths/iris/iris.csv",
            ""
        )
        .contains("5.1,3.5")
    );
    let out = ws.tug(&["datastore", "show", "-n", "nope"]);
    assert!(!out.status.success());

    // Refused: a secret in a registered URI (never stored or echoed), a path out of a store.
    let out = ws.tug(&[
        "data",
        "create",
        "--name",
        "signed",
        "--type",
        "uri_file",
        "--path",
        "https://example.com/a.csv?sv=1&sig=hunter2token",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("query string") && !err.contains("hunter2token"),
        "{err}"
    );
    ws.write(
        "escape.yml",
        &format!(
            "command: ls ${{{{inputs.d}}}}\nenvironment:\n  image: {MINIMAL}\ninputs:\n  d:\n    type: uri_folder\n    path: azureml://datastores/workspaceblobstore/paths/../../..\n"
        ),
    );
    let out = ws.tug(&["job", "create", "-f", "escape.yml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("leaves datastore `workspaceblobstore`"),
        "{err}"
    );
}

#[test]
fn outputs_land_in_the_datastore_at_the_default_path_and_where_they_say() {
    let ws = Ws::new();
    let id = ws.submit(
        "write.yml",
        &format!(
            "command: echo folder > ${{{{outputs.o}}}}/r.txt && echo file > ${{{{outputs.f}}}}\nenvironment:\n  image: {MINIMAL}\noutputs:\n  o:\n    type: uri_folder\n    path: azureml://datastores/workspaceblobstore/paths/results/${{{{name}}}}/\n  f:\n    type: uri_file\n    path: azureml://datastores/workspaceblobstore/paths/files/${{{{name}}}}.txt\n"
        ),
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}\n{}", ws.server_log());
    let store = ws.path().join(".tug/datastores/workspaceblobstore");
    assert_eq!(
        std::fs::read_to_string(store.join(format!("results/{id}/r.txt"))).unwrap(),
        "folder\n"
    );
    assert_eq!(
        std::fs::read_to_string(store.join(format!("files/{id}.txt"))).unwrap(),
        "file\n"
    );
    // Azure's default path of every output, readable by the next job.
    let default = format!("azureml://datastores/workspaceblobstore/paths/azureml/{id}/o");
    assert!(cat(&ws, "uri_folder", &default, "r.txt").contains("folder"));
}
