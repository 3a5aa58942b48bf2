//! Tests: every file under `tests/spec_corpus/` (bad ones with `# expect:` lines, good ones must parse).
//!
//! The parser is chosen by suffix: `.job.yml`, `.sweep.yml`, `.env.yml`, `.conda.yml`,
//! `.model.yml`, `.endpoint.yml`, `.deployment.yml`. Leading `# set: key=value` comment lines are applied
//! as `--set` overrides (Azure's own scripts create some example files with `--set`).

use std::fs;
use std::path::{Path, PathBuf};

use super::{
    SpecError, conda_pip_plan, parse_command_job, parse_environment, parse_model,
    parse_online_deployment, parse_online_endpoint, parse_sweep_job,
};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/spec_corpus");

/// Parsed `# expect: line=L col=C field=a.b contains=text...` (contains runs to end of line).
#[derive(Debug, Default)]
struct Expect {
    line: Option<usize>,
    col: Option<usize>,
    field: Option<String>,
    contains: Option<String>,
}

fn parse_expect(first_line: &str) -> Option<Expect> {
    let rest = first_line.strip_prefix("# expect:")?.trim();
    let (head, contains) = match rest.find("contains=") {
        Some(i) => (
            &rest[..i],
            Some(rest[i + "contains=".len()..].trim().to_string()),
        ),
        None => (rest, None),
    };
    let mut e = Expect {
        contains,
        ..Expect::default()
    };
    for part in head.split_whitespace() {
        let (k, v) = part.split_once('=')?;
        match k {
            "line" => e.line = Some(v.parse().ok()?),
            "col" => e.col = Some(v.parse().ok()?),
            "field" => e.field = Some(v.to_string()),
            _ => return None,
        }
    }
    Some(e)
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(Path::new(CORPUS).join(dir))
        .unwrap_or_else(|e| panic!("corpus folder {CORPUS}/{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    out.sort();
    out
}

/// The `--set` overrides of a corpus file: its leading `# set: key=value` comment lines.
fn overrides(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# set:"))
        .filter_map(|kv| kv.trim().split_once('='))
        .collect()
}

/// The kinds of corpus file, by suffix.
const KINDS: &[&str] = &[
    ".job.yml",
    ".sweep.yml",
    ".env.yml",
    ".conda.yml",
    ".model.yml",
    ".endpoint.yml",
    ".deployment.yml",
    ".pipeline.yml",
    ".schedule.yml",
    ".data.yml",
];

fn parse_any(path: &Path, text: &str) -> Result<(), SpecError> {
    let name = path.file_name().unwrap().to_string_lossy();
    let set = overrides(text);
    if name.ends_with(".job.yml") {
        parse_command_job(path, text, &set).map(drop)
    } else if name.ends_with(".sweep.yml") {
        parse_sweep_job(path, text, &set).map(drop)
    } else if name.ends_with(".env.yml") {
        parse_environment(path, text, &set).map(drop)
    } else if name.ends_with(".conda.yml") {
        conda_pip_plan(path, text).map(drop)
    } else if name.ends_with(".model.yml") {
        parse_model(path, text, &set).map(drop)
    } else if name.ends_with(".endpoint.yml") {
        parse_online_endpoint(path, text, &set).map(drop)
    } else if name.ends_with(".deployment.yml") {
        parse_online_deployment(path, text, &set).map(drop)
    } else if name.ends_with(".pipeline.yml") {
        // Component files sit beside the corpus files they are named from.
        let mut read = |source: &super::ComponentSource| match source {
            super::ComponentSource::File(p) => fs::read_to_string(p)
                .map(|t| (p.clone(), t))
                .map_err(|e| e.to_string()),
            super::ComponentSource::Registered { name, .. } => {
                Err(format!("no registry for `{name}`"))
            }
        };
        super::parse_pipeline_job(path, text, &set, &mut read).map(drop)
    } else if name.ends_with(".data.yml") {
        super::parse_data_asset(path, text, &set).map(drop)
    } else if name.ends_with(".schedule.yml") {
        let now = "2026-01-01T00:00:00Z".parse().unwrap();
        let schedule = super::parse_schedule(path, text, &set, now)?;
        // The job it names is read as `tug schedule create` reads it.
        let job = &schedule.create_job.file;
        match fs::read_to_string(job) {
            Ok(t) => parse_any(job, &t),
            Err(_) => Ok(()),
        }
    } else {
        panic!("{name}: corpus files end in one of {KINDS:?}")
    }
}

#[test]
fn bad_files_fail_where_and_how_they_say() {
    let bad = files("bad");
    assert!(bad.len() >= 30, "only {} bad corpus files", bad.len());
    let mut counts = [0usize; KINDS.len()];
    let mut failures = Vec::new();
    for path in &bad {
        let text = fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for (count, kind) in counts.iter_mut().zip(KINDS) {
            *count += usize::from(name.ends_with(kind));
        }
        let expect = parse_expect(text.lines().next().unwrap_or_default())
            .unwrap_or_else(|| panic!("{name}: first line must be `# expect: ...`"));
        assert!(
            expect.line.is_some() || expect.field.is_some(),
            "{name}: expect needs line= or field="
        );
        let err = match parse_any(path, &text) {
            Ok(()) => {
                failures.push(format!("{name}: parsed without error"));
                continue;
            }
            Err(e) => e,
        };
        let shown = err.to_string();
        let mut problems = Vec::new();
        if let Some(line) = expect.line
            && err.location().map(|l| l.0) != Some(line)
        {
            problems.push(format!("line {line} expected, got {:?}", err.location()));
        }
        if let Some(col) = expect.col
            && err.location().map(|l| l.1) != Some(col)
        {
            problems.push(format!("col {col} expected, got {:?}", err.location()));
        }
        if let Some(field) = &expect.field
            && err.field() != Some(field.as_str())
        {
            problems.push(format!("field `{field}` expected, got {:?}", err.field()));
        }
        if let Some(needle) = &expect.contains
            && !shown.contains(needle.as_str())
        {
            problems.push(format!("message lacks {needle:?}"));
        }
        if !shown.starts_with(&path.display().to_string()) {
            problems.push("message does not start with the file name".into());
        }
        if !shown.contains("\n  help: ") {
            problems.push("no help line".into());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{name}: {}\n    {}",
                problems.join("; "),
                shown.replace('\n', "\n    ")
            ));
        }
    }
    for (count, kind) in counts.iter().zip(KINDS) {
        assert!(
            *count > 0 || *kind == ".conda.yml",
            "the corpus has no bad {kind} file"
        );
    }
    let serving: usize = counts[4..7].iter().sum();
    assert!(counts[1] >= 30, "only {} bad sweep files", counts[1]);
    assert!(
        serving >= 20,
        "only {serving} bad model/endpoint/deployment files"
    );
    assert!(
        failures.is_empty(),
        "{} corpus file(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn good_files_parse() {
    let good = files("good");
    for kind in KINDS {
        assert!(
            good.iter().any(|p| p.to_string_lossy().ends_with(kind)),
            "the corpus has no good {kind} file"
        );
    }
    for path in good {
        let text = fs::read_to_string(&path).unwrap();
        if let Err(e) = parse_any(&path, &text) {
            panic!("{e}");
        }
    }
}

/// Every prefix and every one-line-removed variant of every corpus file gives a result, no panic.
#[test]
fn damaged_files_never_panic() {
    for path in files("bad").into_iter().chain(files("good")) {
        let text = fs::read_to_string(&path).unwrap();
        let cuts = text.char_indices().map(|(i, _)| i).step_by(5);
        for cut in cuts {
            let _ = parse_any(&path, &text[..cut]);
        }
        let lines: Vec<&str> = text.lines().collect();
        for skip in 0..lines.len() {
            let damaged: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, l)| *l)
                .collect();
            let _ = parse_any(&path, &damaged.join("\n"));
            let indented: String = lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    if i == skip {
                        format!("  {l}\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            let _ = parse_any(&path, &indented);
        }
    }
}

#[test]
fn expect_lines_are_read() {
    let e =
        parse_expect("# expect: line=7 col=3 field=inputs.a contains=did you mean `b`?").unwrap();
    assert_eq!(
        (e.line, e.col, e.field.as_deref()),
        (Some(7), Some(3), Some("inputs.a"))
    );
    assert_eq!(e.contains.as_deref(), Some("did you mean `b`?"));
    assert!(parse_expect("# nothing").is_none());
    assert_eq!(
        overrides("# source\n# set: endpoint_name=ep-1\nname: x\n# set: not=this\n"),
        [("endpoint_name", "ep-1")]
    );
}
