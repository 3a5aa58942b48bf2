//! Tests: every file under `tests/spec_corpus/` (bad ones with `# expect:` lines, good ones must parse).

use std::fs;
use std::path::{Path, PathBuf};

use super::{SpecError, conda_pip_plan, parse_command_job, parse_environment};

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

fn parse_any(path: &Path, text: &str) -> Result<(), SpecError> {
    let name = path.file_name().unwrap().to_string_lossy();
    if name.ends_with(".job.yml") {
        parse_command_job(path, text, &[]).map(drop)
    } else if name.ends_with(".env.yml") {
        parse_environment(path, text, &[]).map(drop)
    } else if name.ends_with(".conda.yml") {
        conda_pip_plan(path, text).map(drop)
    } else {
        panic!("{name}: corpus files end in .job.yml, .env.yml or .conda.yml")
    }
}

#[test]
fn bad_files_fail_where_and_how_they_say() {
    let bad = files("bad");
    assert!(bad.len() >= 30, "only {} bad corpus files", bad.len());
    let (mut jobs, mut envs) = (0, 0);
    let mut failures = Vec::new();
    for path in &bad {
        let text = fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        jobs += usize::from(name.ends_with(".job.yml"));
        envs += usize::from(name.ends_with(".env.yml"));
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
    assert!(
        jobs > 0 && envs > 0,
        "the corpus needs both job and environment files"
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
    assert!(!good.is_empty());
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
}
