//! Every file in `tests/spec_corpus/bad/` is refused by the real CLI with an error that
//! names the file, the line and column and the field its `# expect:` line states — and
//! nothing is created: no store, no server, no run, no container. The command is chosen by
//! suffix: `.env.yml` → `environment`, `.model.yml` → `model`, `.endpoint.yml` →
//! `online-endpoint`, `.deployment.yml` → `online-deployment`, `.schedule.yml` →
//! `schedule`, `.data.yml` → `data`, else `job` (`.job.yml` and
//! `.sweep.yml`: `tug job create` reads a sweep file with the sweep reader).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn corpus() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/spec_corpus/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

fn expectations(text: &str) -> BTreeMap<String, String> {
    let line = text.lines().next().unwrap_or_default();
    let rest = line
        .strip_prefix("# expect:")
        .unwrap_or_else(|| panic!("first line must be `# expect: ...`: {line}"));
    let mut out = BTreeMap::new();
    // `contains=` runs to the end of the line; the others are single words.
    let (head, contains) = match rest.split_once("contains=") {
        Some((h, c)) => (h, Some(c.trim())),
        None => (rest, None),
    };
    for part in head.split_whitespace() {
        if let Some((k, v)) = part.split_once('=') {
            out.insert(k.to_string(), v.to_string());
        }
    }
    if let Some(c) = contains {
        out.insert("contains".into(), c.to_string());
    }
    out
}

/// The `tug <noun> create -f` that reads a corpus file, by its suffix.
fn command_for(name: &str) -> &'static str {
    const NOUNS: &[(&str, &str)] = &[
        (".env.yml", "environment"),
        (".model.yml", "model"),
        (".endpoint.yml", "online-endpoint"),
        (".deployment.yml", "online-deployment"),
        (".job.yml", "job"),
        (".sweep.yml", "job"),
        (".schedule.yml", "schedule"),
        (".data.yml", "data"),
    ];
    NOUNS
        .iter()
        .find(|(suffix, _)| name.ends_with(suffix))
        .map_or("job", |(_, noun)| noun)
}

#[test]
fn bad_files_are_refused_with_location_and_nothing_is_created() {
    let files = corpus();
    assert!(files.len() >= 25, "the corpus has at least 25 bad files");
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expect = expectations(&text);
        let ws = tempfile::tempdir().unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let noun = command_for(&name);
        let out = Command::new(env!("CARGO_BIN_EXE_tug"))
            .args([noun, "create", "-f", file.to_str().unwrap()])
            .current_dir(ws.path())
            .env("TUG_WORKSPACE", ws.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut problems = Vec::new();
        if out.status.success() {
            problems.push("was accepted".to_string());
        }
        if !stderr.contains(&name) {
            problems.push("does not name the file".into());
        }
        if let (Some(l), Some(c)) = (expect.get("line"), expect.get("col")) {
            let at = format!("{name}:{l}:{c}");
            if !stderr.contains(&at) {
                problems.push(format!("does not say {at}"));
            }
        }
        if let Some(f) = expect.get("field")
            && !stderr.contains(f.as_str())
        {
            problems.push(format!("does not name field {f}"));
        }
        if let Some(c) = expect.get("contains")
            && !stderr.contains(c.as_str())
        {
            problems.push(format!("does not contain `{c}`"));
        }
        if !stderr.contains("help:") {
            problems.push("gives no help line".into());
        }
        let tug = ws.path().join(".tug");
        for created in ["tug.db", "server.json", "artifacts/runs"] {
            if tug.join(created).exists() {
                problems.push(format!("created .tug/{created}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{name}: {}\n  stderr: {stderr}",
                problems.join(", ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
