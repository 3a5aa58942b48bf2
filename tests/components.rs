//! Registered components on the real engine: `tug component create` captures the file and
//! the code it names; a pipeline in another folder runs it as `azureml:<name>:<version>`
//! or `@latest`; a version is immutable (editing the code afterwards changes nothing until
//! it is registered again, as the next version); a changed file under a taken version is
//! refused; an unknown version is a located error.

mod common;

use std::time::Duration;

use common::{MINIMAL, Ws};

const LIMIT: Duration = Duration::from_secs(240);

fn component(ws: &Ws, word: &str) {
    ws.write(
        "lib/say/say.py",
        &format!("import sys\nprint('{word}', sys.argv[1])\n"),
    );
    ws.write(
        "lib/say.yml",
        &format!(
            "name: say\ntype: command\ninputs:\n  who:\n    type: string\n    default: world\n    enum: [world, tug]\ncode: ./say\nenvironment:\n  image: {MINIMAL}\ncommand: python say.py ${{{{inputs.who}}}}\n"
        ),
    );
}

fn pipeline(ws: &Ws, reference: &str) {
    ws.write(
        "work/p.yml",
        &format!(
            "type: pipeline\nexperiment_name: components\njobs:\n  hello:\n    component: {reference}\n    inputs:\n      who: tug\n"
        ),
    );
}

/// Runs work/p.yml to its end; returns the log of its one step.
fn run_log(ws: &Ws) -> String {
    let out = ws
        .tug_cmd(&[
            "job",
            "create",
            "-f",
            "work/p.yml",
            "--stream",
            "--set",
            "settings.force_rerun=true",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        ws.server_log()
    );
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Submitted pipeline "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}");
    std::fs::read_to_string(
        ws.run_dir(&format!("{id}_hello"))
            .join("user_logs/std_log.txt"),
    )
    .unwrap()
}

#[test]
fn registered_components_run_from_anywhere_and_versions_do_not_change() {
    let ws = Ws::new();
    component(&ws, "hello");
    let out = ws.ok(&["component", "create", "-f", "lib/say.yml"]);
    assert!(out.contains("Registered component say version 1"), "{out}");
    // Again, unchanged: nothing new.
    let out = ws.ok(&["component", "create", "-f", "lib/say.yml"]);
    assert!(out.contains("already registered"), "{out}");

    pipeline(&ws, "azureml:say:1");
    assert!(run_log(&ws).contains("hello tug"));

    // Edited after registering: version 1 still runs what was registered.
    component(&ws, "howdy");
    assert!(run_log(&ws).contains("hello tug"));
    // The edit under the taken version is refused; registered anew it is version 2.
    let out = ws.tug(&["component", "create", "-f", "lib/say.yml", "--version", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already exists with different content"),
        "{err}"
    );
    let out = ws.ok(&["component", "create", "-f", "lib/say.yml"]);
    assert!(out.contains("version 2"), "{out}");
    pipeline(&ws, "azureml:say@latest");
    assert!(run_log(&ws).contains("howdy tug"));
    pipeline(&ws, "azureml:say:1");
    assert!(run_log(&ws).contains("hello tug"));

    let list = ws.json(&["component", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list:#}");
    let shown = ws.ok(&["component", "show", "-n", "say"]);
    assert!(
        shown.contains("version        2") && shown.contains("who: string"),
        "{shown}"
    );

    // A version that is not registered is located at the step, and nothing runs.
    let before = ws.json(&["job", "list"]).as_array().unwrap().len();
    pipeline(&ws, "azureml:say:9");
    let out = ws.tug(&["job", "create", "-f", "work/p.yml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("p.yml:5:16") && err.contains("no version `9` of component `say`"),
        "{err}"
    );
    assert_eq!(ws.json(&["job", "list"]).as_array().unwrap().len(), before);
    // A value outside the component's enum is refused as it would be from the file.
    pipeline(&ws, "azureml:say:1");
    let text = std::fs::read_to_string(ws.path().join("work/p.yml"))
        .unwrap()
        .replace("who: tug", "who: nobody");
    ws.write("work/p.yml", &text);
    let out = ws.tug(&["job", "create", "-f", "work/p.yml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nobody"), "{err}");
}
