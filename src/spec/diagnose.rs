//! Turning serde_norway errors into [`SpecError`]s that say where, what and how to fix it.
//!
//! serde_norway's `Display` is `<path>: <message> at line L column C`; its `location()` gives
//! the position. The message is serde's standard text (`unknown field `x`, expected one of
//! ...`, `invalid type: string "a", expected u64`) or a [`Marked`] message from this module's
//! own `Deserialize` impls; both are taken apart here.

use std::path::Path;

use serde_yaml::Value;

use super::document::Document;
use super::error::{Marked, MarkedKind, Origin, SpecError, backticked, nearest};
use super::index::{Pos, SourceIndex, join};

fn mark_of(err: &serde_yaml::Error) -> Option<Pos> {
    err.location().map(|l| (l.line(), l.column()))
}

/// Remove every ` at line N column M` from libyaml's text.
fn strip_positions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let after = &after[digits..];
        match after.strip_prefix(" column ") {
            Some(col) => {
                let d = col.chars().take_while(char::is_ascii_digit).count();
                rest = &col[d..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Every `at line N column M` in libyaml's text, in order.
fn positions(text: &str) -> Vec<Pos> {
    let mut out = Vec::new();
    for chunk in text.split(" at line ").skip(1) {
        let line: String = chunk.chars().take_while(char::is_ascii_digit).collect();
        let col = chunk[line.len()..].strip_prefix(" column ").map(|c| {
            c.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        });
        if let (Ok(l), Some(Ok(c))) = (line.parse(), col.map(|c| c.parse())) {
            out.push((l, c));
        }
    }
    out
}

/// Split serde_norway's `path: message` (the path is absent at the document root).
fn split_path(text: &str) -> (&str, &str) {
    // serde's own messages and ours start with one of these; the path before them may contain
    // anything (a key with spaces), so look for `: ` followed by a known start first.
    const STARTS: &[&str] = &[
        "unknown field `",
        "missing field `",
        "duplicate field `",
        "duplicate entry ",
        "invalid type: ",
        "invalid value: ",
        "invalid length ",
        "unknown variant `",
        "\u{1e}",
    ];
    if STARTS.iter().any(|s| text.starts_with(s)) {
        return ("", text);
    }
    for (i, _) in text.match_indices(": ") {
        let rest = &text[i + 2..];
        if STARTS.iter().any(|s| rest.starts_with(s)) {
            return (&text[..i], rest);
        }
    }
    match text.find(": ") {
        Some(i) if !text[..i].contains(char::is_whitespace) && !text[..i].contains('`') => {
            (&text[..i], &text[i + 2..])
        }
        _ => ("", text),
    }
}

fn syntax_help(message: &str) -> &'static str {
    const HELP: &[(&str, &str)] = &[
        (
            "tab character",
            "indent with spaces only; YAML does not allow tabs for indentation",
        ),
        (
            "mapping values are not allowed",
            "a value contains `: ` or is indented under a key that already has a value; quote the value, or fix the indentation",
        ),
        (
            "did not find expected key",
            "keys of one mapping must start in the same column; check the indentation of this line and the one above",
        ),
        (
            "could not find expected ':'",
            "every line in a mapping needs `key: value`; check for a missing colon or a line that should be indented further",
        ),
        (
            "did not find expected '-'",
            "items of one list must start with `- ` in the same column",
        ),
        (
            "did not find expected ',' or ']'",
            "a `[...]` list is not closed, or an item contains `]` or `,` and needs quotes",
        ),
        (
            "did not find expected ',' or '}'",
            "a `{...}` mapping is not closed, or a value contains `}` or `,` and needs quotes",
        ),
        (
            "found unexpected end of stream",
            "a quote or bracket is opened but never closed",
        ),
        (
            "cannot start any token",
            "values starting with `@` or a backtick must be quoted",
        ),
        (
            "block sequence entries are not allowed",
            "a `- item` follows a value on the same key; put the list items on their own lines under the key",
        ),
        (
            "found undefined alias",
            "define the anchor (`&name`) before using `*name`",
        ),
        (
            "more than one document",
            "put one job, environment, model, endpoint or deployment per file; remove the `---` separator and what follows",
        ),
        (
            "did not find expected alphabetic or numeric character",
            "an `&anchor` or `*alias` name is missing; quote values that start with `&` or `*`",
        ),
    ];
    HELP.iter()
        .find(|(needle, _)| message.contains(needle))
        .map_or(
            "check the YAML syntax near this position (indentation, quotes, colons)",
            |(_, help)| help,
        )
}

/// An error from the first, untyped parse: YAML syntax or a duplicate key.
pub(crate) fn load_error(
    err: &serde_yaml::Error,
    path: &Path,
    source: &str,
    index: &SourceIndex,
) -> SpecError {
    let full = err.to_string();
    // "found unexpected end of stream ... while scanning a quoted scalar at line 3 column 8":
    // the end of the file says nothing; where the unclosed thing started does.
    let context = full
        .contains("end of stream")
        .then(|| positions(&full).get(1).copied())
        .flatten();
    let mark = context.or_else(|| mark_of(err));
    let origin = |pos| Origin::File {
        path: path.to_path_buf(),
        pos,
    };
    let text = strip_positions(&err.to_string());
    let (map_path, message) = split_path(&text);
    if let Some(rest) = message.strip_prefix("duplicate entry with key ") {
        let key = rest.trim_matches('"');
        let field = join(map_path, key);
        let first = index.node(&field).and_then(|n| n.key).map(|(l, _)| l);
        return SpecError::DuplicateKey {
            origin: origin(index.duplicate(&field).or(mark)),
            message: duplicate_message(&field, first),
            help: format!(
                "remove one of the two `{key}` entries (Azure silently keeps the last one; tug refuses to guess)"
            ),
            field,
        };
    }
    // libyaml calls a tab that indents a key "character that cannot start any token".
    let tab_at_mark = mark.is_some_and(|(l, c)| {
        source
            .lines()
            .nth(l.saturating_sub(1))
            .and_then(|line| line.chars().nth(c.saturating_sub(1)))
            == Some('\t')
    });
    let help = if tab_at_mark {
        syntax_help("tab character")
    } else {
        syntax_help(&text)
    };
    let message = if tab_at_mark {
        format!("{text} (a tab character)")
    } else {
        text
    };
    SpecError::Syntax {
        origin: origin(mark),
        help: help.to_string(),
        message,
    }
}

fn duplicate_message(field: &str, first_line: Option<usize>) -> String {
    match first_line {
        Some(l) => format!("duplicate key `{field}` (first defined on line {l})"),
        None => format!("duplicate key `{field}`"),
    }
}

/// Backticked words of a serde message (`unknown field `a`, expected one of `b`, `c``).
fn backticked_words(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// "command job" for the root, else "`inputs.lr`".
fn context_name(doc: &Document, path: &str) -> String {
    if path.is_empty() {
        doc.what.to_string()
    } else {
        format!("`{path}`")
    }
}

/// serde's names of kinds, as a person would say them.
fn humanize(kind: &str) -> String {
    let kind = kind.trim();
    match kind {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => {
            "a whole number".into()
        }
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit value" | "unit" => "nothing (an empty value)".into(),
        k if k.starts_with("struct ") => "a mapping".into(),
        k if k.starts_with("floating point ") => {
            format!("the number {}", k.trim_start_matches("floating point "))
        }
        k if k.starts_with("integer ") => {
            format!("the number {}", k.trim_start_matches("integer "))
        }
        k if k.starts_with("boolean ") => {
            format!("the boolean {}", k.trim_start_matches("boolean "))
        }
        k if k.starts_with("string ") => format!("the text {}", k.trim_start_matches("string ")),
        k => k.to_string(),
    }
}

/// Describe a YAML value briefly (for "found ..." texts).
pub(crate) fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "nothing (an empty value)".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the text {s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

fn type_help(field: &str, expected: &str, found: &str) -> String {
    let leaf = field.rsplit('.').next().unwrap_or(field);
    if found.starts_with("nothing") {
        return format!("give `{field}` a value, or delete the line");
    }
    if expected == "a whole number" {
        return match leaf {
            "timeout" if field == "limits.timeout" => "give the timeout in whole seconds without quotes or units, e.g. `timeout: 7200` for two hours".into(),
            "instance_count" | "max_instance_count" => format!("write `{leaf}` as a whole number, e.g. `{leaf}: 1`"),
            _ => format!("write `{field}` as a whole number without quotes or units"),
        };
    }
    if expected == "true or false" {
        return format!("write `{leaf}: true` or `{leaf}: false`");
    }
    if expected == "a string" {
        return match found {
            "a mapping" | "a list" => format!(
                "`{field}` takes one text value; if the text contains `: ` or starts with `[` or `{{`, put it in quotes"
            ),
            _ => format!("put the value of `{field}` in quotes to make it text"),
        };
    }
    if expected == "a mapping" {
        return format!("write the keys of `{field}` on their own lines, indented under `{leaf}:`");
    }
    if expected == "a list" {
        return format!(
            "write `{field}` as a list: one `- item` per line under `{leaf}:`, or `[a, b]`"
        );
    }
    if expected.contains("single value") {
        return format!(
            "write `{leaf}` as one value (text, number or boolean); to pass structured data, quote it as one string, e.g. `{leaf}: '{{\"level\": \"debug\"}}'`"
        );
    }
    format!("change `{field}` to {expected}")
}

fn missing_help(what: &str, field: &str) -> String {
    let leaf = field.rsplit('.').next().unwrap_or(field);
    match (what, field) {
        ("online endpoint", "name") => {
            return "add `name:`, e.g. `name: my-endpoint` (3 to 32 letters, digits and `-`, starting with a letter)".into();
        }
        ("online deployment", "name") => {
            return "add `name:`, e.g. `name: blue` (3 to 32 letters, digits and `-`, starting with a letter)".into();
        }
        ("online deployment", "endpoint_name") => {
            return "add `endpoint_name:` naming the online endpoint this deployment belongs to (or pass `--set endpoint_name=<name>`)".into();
        }
        _ => {}
    }
    match leaf {
        "command" => "add the shell command to run, e.g. `command: python train.py`".into(),
        "environment" => "add `environment:` with an inline `image: python:3.11-slim`, or a registered `azureml:<name>:<version>`".into(),
        "path" => format!("add `{field}` (a local path relative to this file, or a URI)"),
        "primary_metric" => "add `primary_metric:` naming the metric each trial logs with `mlflow.log_metric`, e.g. `primary_metric: accuracy`".into(),
        "goal" => "add `goal: maximize` or `goal: minimize`".into(),
        "type" => format!("add `{field}`"),
        _ => format!("add `{field}`"),
    }
}

/// Translate an error from the typed reading of `doc`.
pub(crate) fn typed_error(err: &serde_yaml::Error, doc: &Document) -> SpecError {
    let mark = mark_of(err);
    let text = err.to_string();
    let text = match mark {
        Some((l, c)) => text
            .strip_suffix(&format!(" at line {l} column {c}"))
            .unwrap_or(&text)
            .to_string(),
        None => text,
    };
    let (path, message) = split_path(&text);

    if let Some(marked) = Marked::decode(message) {
        let field = if marked.sub.is_empty() {
            path.to_string()
        } else {
            join(path, &marked.sub)
        };
        let message = marked.message.replace("{field}", &field);
        return match marked.kind {
            MarkedKind::Invalid => SpecError::InvalidValue {
                origin: doc.origin(&field, marked.at_key, mark),
                field,
                message,
                help: marked.help,
            },
            MarkedKind::Unsupported => SpecError::Unsupported {
                origin: doc.origin(&field, marked.at_key, mark),
                field,
                message,
                help: marked.help,
            },
            MarkedKind::Missing => SpecError::MissingField {
                origin: doc.origin(path, true, mark),
                message: format!("missing required field `{field}`"),
                field,
                help: marked.help,
            },
        };
    }

    if let Some(rest) = message.strip_prefix("unknown field `") {
        let words = backticked_words(message);
        let key = rest.split('`').next().unwrap_or_default().to_string();
        let candidates: Vec<&str> = words.iter().skip(1).copied().collect();
        let field = join(path, &key);
        let suggestion = nearest(&key, candidates.iter().copied()).map(str::to_string);
        let conda_key = matches!(key.as_str(), "channels" | "dependencies");
        let help = if conda_key && (doc.what == "environment" || path == "environment") {
            "this looks like a conda file; put `channels:`/`dependencies:` in conda.yml and reference it with `conda_file: conda.yml` (or nest them under `conda_file:`)".to_string()
        } else if let Some(s) = &suggestion {
            format!("rename `{key}` to `{s}`")
        } else if candidates.is_empty() {
            format!(
                "`{}` takes no fields; remove `{key}`",
                if path.is_empty() { doc.what } else { path }
            )
        } else {
            format!("valid fields here are {}", backticked(&candidates))
        };
        let hint = match (&suggestion, conda_key) {
            (Some(s), false) => format!("; did you mean `{s}`?"),
            _ => String::new(),
        };
        return SpecError::UnknownField {
            origin: doc.origin(&field, true, mark),
            message: format!("unknown field `{key}` in {}{hint}", context_name(doc, path)),
            field,
            help,
        };
    }

    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or_default();
        let field = join(path, key);
        return SpecError::MissingField {
            origin: doc.origin(path, true, mark),
            message: format!("missing required field `{field}`"),
            help: missing_help(doc.what, &field),
            field,
        };
    }

    if let Some(rest) = message.strip_prefix("duplicate field `") {
        let key = rest.split('`').next().unwrap_or_default();
        let field = join(path, key);
        let pos = doc.index.duplicate(&field).or(mark);
        return SpecError::DuplicateKey {
            origin: Origin::File {
                path: doc.path.to_path_buf(),
                pos,
            },
            message: duplicate_message(
                &field,
                doc.index.node(&field).and_then(|n| n.key).map(|(l, _)| l),
            ),
            help: format!("remove one of the two `{key}` entries"),
            field,
        };
    }

    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (found, expected) = rest
                .rsplit_once(", expected ")
                .unwrap_or((rest, "something else"));
            let (found, expected) = (humanize(found), humanize(expected));
            let help = type_help(path, &expected, &found);
            return if prefix == "invalid type: " {
                SpecError::InvalidType {
                    origin: doc.origin(path, false, mark),
                    field: path.to_string(),
                    message: format!("`{path}` must be {expected}, found {found}"),
                    help,
                }
            } else {
                SpecError::InvalidValue {
                    origin: doc.origin(path, false, mark),
                    field: path.to_string(),
                    message: format!("`{path}` cannot be {found}; expected {expected}"),
                    help,
                }
            };
        }
    }

    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let value = rest.split('`').next().unwrap_or_default();
        let allowed: Vec<&str> = backticked_words(message).into_iter().skip(1).collect();
        let hint = nearest(value, allowed.iter().copied())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return SpecError::InvalidValue {
            origin: doc.origin(path, false, mark),
            field: path.to_string(),
            message: format!("unknown value `{value}` for `{path}`{hint}"),
            help: format!("use one of {}", backticked(&allowed)),
        };
    }

    let field = path;
    SpecError::InvalidValue {
        origin: doc.origin(field, false, mark),
        field: field.to_string(),
        message: if field.is_empty() {
            message.to_string()
        } else {
            format!("`{field}`: {message}")
        },
        help: "compare this part of the file with the Azure ML YAML reference for this file type"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_libyaml_positions() {
        assert_eq!(
            strip_positions(
                "found a tab character at line 2 column 1, while scanning a plain scalar at line 1 column 10"
            ),
            "found a tab character, while scanning a plain scalar"
        );
    }

    #[test]
    fn splits_serde_paths() {
        assert_eq!(
            split_path("tags.my tag: invalid type: map, expected a string"),
            ("tags.my tag", "invalid type: map, expected a string")
        );
        assert_eq!(
            split_path("inputs.a: unknown field `x`"),
            ("inputs.a", "unknown field `x`")
        );
        assert_eq!(
            split_path("invalid type: string \"a\", expected u64"),
            ("", "invalid type: string \"a\", expected u64")
        );
        assert_eq!(
            split_path("missing field `command`"),
            ("", "missing field `command`")
        );
    }

    #[test]
    fn humanizes_serde_kinds() {
        assert_eq!(humanize("u64"), "a whole number");
        assert_eq!(humanize("string \"1h\""), "the text \"1h\"");
        assert_eq!(humanize("struct Resources"), "a mapping");
    }
}
