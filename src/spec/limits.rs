//! Bounds on what a spec file may cost to read: its size, its nesting depth, and how far its
//! aliases expand. Every reader passes through [`check`] before anything else looks at the
//! text, so no input (a hostile file, a fuzzer's output, `/dev/zero` named as a job file)
//! can overflow the stack or grow memory without bound; each refusal is a located error.
//!
//! Depth and expansion are measured on the YAML parser's own events, by a visitor that
//! allocates nothing: serde_norway resolves aliases by replaying the anchored events, so the
//! visitor sees the document as it would be built and stops at the first node over budget,
//! before a `Value` is built.

use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::diagnose;
use super::error::{Origin, SpecError};
use super::index::SourceIndex;

/// Largest spec file read (Azure's own files are a few KiB; big conda files ~20 KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Deepest nesting of mappings and sequences (real files stay under 10).
pub const MAX_DEPTH: usize = 64;
/// Nodes in the document once aliases are expanded.
pub const MAX_NODES: usize = 250_000;
/// Bytes of scalar text once aliases are expanded.
pub const MAX_SCALAR_BYTES: usize = 8 << 20;

/// Refuses text over any of the bounds, with the place it went over.
pub fn check(path: &Path, text: &str) -> Result<(), SpecError> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(path, text.len() as u64));
    }
    // libyaml's scanner spends time proportional to the flow depth on every token, so a
    // megabyte of `[` would take hours: flow nesting is measured on the text first.
    if let Some((line, col)) = flow_too_deep(text) {
        return Err(SpecError::InvalidValue {
            origin: Origin::File {
                path: path.to_path_buf(),
                pos: Some((line, col)),
            },
            field: String::new(),
            message: format!(
                "nesting goes deeper than {MAX_DEPTH} levels of mappings and sequences"
            ),
            help: LIMITS[0].help.into(),
        });
    }
    let mut budget = Budget::default();
    // One document is all a spec file has; what parses past it is the reader's error.
    if let Some(doc) = serde_yaml::Deserializer::from_str(text).next()
        && let Err(e) = (Walk {
            budget: &mut budget,
            depth: 0,
        })
        .deserialize(doc)
    {
        let msg = e.to_string();
        if let Some(limit) = LIMITS.iter().find(|l| msg.contains(l.marker)) {
            let index = SourceIndex::default();
            let mut origin = diagnose::load_error(&e, path, text, &index)
                .origin()
                .clone();
            if let Origin::File {
                pos: pos @ None, ..
            } = &mut origin
            {
                *pos = first_alias(text);
            }
            return Err(SpecError::InvalidValue {
                origin,
                field: String::new(),
                message: format!("{} {}", limit.message, limit.what),
                help: limit.help.into(),
            });
        }
        // Syntax errors and the like: the reader reports them with more context.
    }
    Ok(())
}

/// Reads a spec file, stopping past [`MAX_FILE_BYTES`] (so `/dev/zero` or a data file named
/// by mistake costs nothing), and refusing text that is not UTF-8 with where it is not.
pub fn read_file(path: &Path) -> Result<String, ReadError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let len = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(ReadError::Spec(Box::new(too_big(
            path,
            len.max(bytes.len() as u64),
        ))));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        let col = String::from_utf8_lossy(good.rsplit(|b| *b == b'\n').next().unwrap_or(good))
            .chars()
            .count()
            + 1;
        ReadError::Spec(Box::new(SpecError::Syntax {
            origin: Origin::File {
                path: path.to_path_buf(),
                pos: Some((line, col)),
            },
            message: "the file is not UTF-8 text".into(),
            help: "save it as UTF-8 (YAML files are text; is this the right file?)".into(),
        }))
    })
}

/// Why [`read_file`] gave no text.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(std::io::Error),
    #[error("{0}")]
    Spec(Box<SpecError>),
}

/// The error for a file over [`MAX_FILE_BYTES`] (also used by callers that stop reading early).
pub fn too_big(path: &Path, len: u64) -> SpecError {
    SpecError::InvalidValue {
        origin: Origin::File {
            path: path.to_path_buf(),
            pos: None,
        },
        field: String::new(),
        message: format!(
            "the file is {} and tug reads spec files up to {} KiB",
            human_bytes(len),
            MAX_FILE_BYTES >> 10
        ),
        help:
            "is this the right file? Job, environment and deployment files are small YAML files; \
               keep data in inputs (a folder or URI), not in the file"
                .into(),
    }
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else {
        format!("{n} bytes")
    }
}

/// Where flow collections (`[`, `{`), or block levels by indentation and compact `- - x`
/// items, first nest deeper than [`MAX_DEPTH`], as a 1-based
/// `(line, column)`. A bracket counts only where YAML reads it as a collection: at the start
/// of a block value (after indentation, `- `, `key: `, an anchor or tag) or anywhere inside a
/// flow collection; brackets in plain, quoted and block scalars and in comments do not.
fn flow_too_deep(text: &str) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    // Inside a block scalar: lines indented more than this are its content.
    let mut block_scalar: Option<usize> = None;
    // A quoted scalar open across lines, and which quote.
    let mut quote: Option<char> = None;
    let mut indents: Vec<usize> = Vec::new();
    for (li, line) in text.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let indent = chars.iter().take_while(|c| **c == ' ').count();
        if let Some(parent) = block_scalar {
            if indent == chars.len() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut c = 0;
        // Whether the next non-blank char starts a block value.
        let mut value_start = depth == 0 && quote.is_none();
        // Block nesting: a stack of the indents of the lines that opened levels, plus the
        // compact `- - x` items of this line.
        let blank = indent == chars.len() || chars[indent] == '#';
        if value_start && !blank {
            while indents.last().is_some_and(|top| *top >= indent) {
                indents.pop();
            }
            indents.push(indent);
            if indents.len() > MAX_DEPTH {
                return Some((li + 1, indent + 1));
            }
        }
        let mut compact = 0;
        while c < chars.len() {
            let ch = chars[c];
            if let Some(q) = quote {
                match ch {
                    '\\' if q == '"' => c += 1,
                    '\'' if q == '\'' && chars.get(c + 1) == Some(&'\'') => c += 1,
                    _ if ch == q => {
                        quote = None;
                        value_start = false;
                    }
                    _ => {}
                }
                c += 1;
                continue;
            }
            let after_blank = c == 0 || matches!(chars[c - 1], ' ' | '\t');
            let next_blank = matches!(chars.get(c + 1), None | Some(' ') | Some('\t'));
            match ch {
                '#' if after_blank => break,
                ' ' | '\t' => {}
                '"' | '\'' if depth > 0 || value_start => quote = Some(ch),
                '[' | '{' if depth > 0 || value_start => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some((li + 1, c + 1));
                    }
                }
                ']' | '}' if depth > 0 => {
                    depth -= 1;
                    value_start = false;
                }
                ',' if depth > 0 => {}
                '-' | '?' if depth == 0 && value_start && next_blank => {
                    compact += 1;
                    if indents.len() + compact > MAX_DEPTH {
                        return Some((li + 1, c + 1));
                    }
                }
                ':' if depth == 0 && next_blank => value_start = true,
                ':' if depth > 0 => {}
                '&' | '!' if depth > 0 || value_start => {
                    // An anchor or tag: skip its name; the value follows.
                    while c + 1 < chars.len()
                        && !matches!(chars[c + 1], ' ' | '\t' | ',' | '[' | ']' | '{' | '}')
                    {
                        c += 1;
                    }
                }
                '|' | '>' if depth == 0 && value_start => {
                    block_scalar = Some(indent);
                    break;
                }
                _ if depth == 0 => {
                    // A plain scalar or a key: no collection starts until the next `: `.
                    value_start = false;
                }
                _ => {}
            }
            c += 1;
        }
    }
    None
}

/// The first `*alias` of the text (the parser does not say which one it was expanding).
fn first_alias(text: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(li, line)| {
        let chars: Vec<char> = line.chars().collect();
        (0..chars.len())
            .find(|&c| chars[c] == '*' && (c == 0 || matches!(chars[c - 1], ' ' | '[' | ',' | '{')))
            .map(|c| (li + 1, c + 1))
    })
}

struct Limit {
    marker: &'static str,
    message: &'static str,
    what: &'static str,
    help: &'static str,
}

const LIMITS: &[Limit] = &[
    Limit {
        marker: "tug-limit: depth",
        message: "nesting goes deeper than",
        what: "64 levels of mappings and sequences",
        help: "spec files nest a few levels deep; flatten the structure (this file looks generated or damaged)",
    },
    Limit {
        marker: "tug-limit: nodes",
        message: "the document, with its aliases expanded, has more than",
        what: "250000 values",
        help: "an alias (`*name`) repeats everything its anchor (`&name`) holds; repeat less, or write the values out",
    },
    Limit {
        marker: "tug-limit: bytes",
        message: "the document, with its aliases expanded, holds more than",
        what: "8 MiB of text",
        help: "an alias (`*name`) repeats everything its anchor (`&name`) holds; repeat less, or write the values out",
    },
    Limit {
        marker: "recursion limit exceeded",
        message: "nesting goes deeper than",
        what: "the YAML parser's limit",
        help: "spec files nest a few levels deep; flatten the structure (this file looks generated or damaged)",
    },
    Limit {
        marker: "repetition limit exceeded",
        message: "aliases are expanded more often than",
        what: "the YAML parser allows",
        help: "an alias (`*name`) repeats everything its anchor (`&name`) holds; repeat less, or write the values out",
    },
];

#[derive(Default)]
struct Budget {
    nodes: usize,
    scalar_bytes: usize,
}

impl Budget {
    fn node<E: de::Error>(&mut self, scalar_len: usize) -> Result<(), E> {
        self.nodes += 1;
        self.scalar_bytes += scalar_len;
        if self.nodes > MAX_NODES {
            return Err(E::custom("tug-limit: nodes"));
        }
        if self.scalar_bytes > MAX_SCALAR_BYTES {
            return Err(E::custom("tug-limit: bytes"));
        }
        Ok(())
    }
}

/// Visits any YAML value, counting and keeping nothing.
struct Walk<'b> {
    budget: &'b mut Budget,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Walk<'_> {
    fn nested<E: de::Error>(&mut self) -> Result<Walk<'_>, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom("tug-limit: depth"));
        }
        Ok(Walk {
            budget: self.budget,
            depth: self.depth + 1,
        })
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.budget.node(1)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.budget.node(8)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.budget.node(8)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.budget.node(8)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.budget.node(v.len())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.budget.node(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.budget.node(0)
    }
    fn visit_some<D: Deserializer<'de>>(mut self, d: D) -> Result<(), D::Error> {
        self.nested()?.deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(mut self, d: D) -> Result<(), D::Error> {
        self.nested()?.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.budget.node(0)?;
        while seq.next_element_seed(self.nested()?)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.budget.node(0)?;
        while map.next_key_seed(self.nested()?)?.is_some() {
            map.next_value_seed(self.nested()?)?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(mut self, data: A) -> Result<(), A::Error> {
        use de::VariantAccess;
        // A tagged value (`!tag x`): walk what it holds.
        let ((), variant) = data.variant_seed(self.nested()?)?;
        variant.newtype_variant_seed(self.nested()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        check(Path::new("f.yml"), text).unwrap_err().to_string()
    }

    #[test]
    fn ordinary_files_pass() {
        check(
            Path::new("f.yml"),
            "command: echo\nenvironment:\n  image: x\ninputs:\n  a: {type: integer, default: 1}\n",
        )
        .unwrap();
        let defaults = "base: &b {cpu: 1, memory: 2Gi}\nsmall: *b\nlarge: *b\n";
        check(Path::new("f.yml"), defaults).unwrap();
        check(Path::new("f.yml"), "").unwrap();
        // Syntax errors are left to the readers, which say more.
        check(Path::new("f.yml"), "a: [1, 2\n").unwrap();
    }

    #[test]
    fn deep_flow_nesting_is_a_located_error_not_a_stack_overflow() {
        let text = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let e = err(&text);
        assert!(e.starts_with("f.yml:1:"), "{e}");
        assert!(e.contains("deeper than"), "{e}");
    }

    #[test]
    fn deep_block_nesting_is_a_located_error() {
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&" ".repeat(i));
            text.push_str("k:\n");
        }
        let e = err(&text);
        assert!(e.contains("deeper than 64 levels"), "{e}");
        assert!(e.starts_with("f.yml:"), "{e}");
        let dashes = format!("{}x\n", "- ".repeat(10_000));
        assert!(err(&dashes).contains("deeper than"));
    }

    #[test]
    fn alias_bombs_stop_at_the_budget() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let e = err(&text);
        assert!(
            e.contains("aliases expanded") || e.contains("aliases are expanded"),
            "{e}"
        );
        let big = format!(
            "s: &s \"{}\"\nl: [{}]\n",
            "y".repeat(100_000),
            vec!["*s"; 100].join(", ")
        );
        assert!(err(&big).contains("8 MiB of text"), "{}", err(&big));
    }

    #[test]
    fn brackets_that_are_not_collections_do_not_count() {
        let deep = "[".repeat(100);
        for text in [
            format!("command: echo {deep}\n"),
            format!("command: \"{deep}\"\n"),
            format!("command: '{deep}'\n"),
            format!("# {deep}\ncommand: x\n"),
            format!("command: |\n  {deep}\n  - [\n"),
            format!("command: >-\n  [{deep}\nnext: 1\n"),
            format!("command: \"a\n  {deep}\"\n"),
            format!("a: [\"{deep}\", '{deep}']\n"),
        ] {
            assert_eq!(flow_too_deep(&text), None, "{text}");
        }
        assert_eq!(
            flow_too_deep(&format!("a: {deep}")),
            Some((1, 4 + MAX_DEPTH))
        );
        assert_eq!(
            flow_too_deep(&format!("- &x !t {deep}")).map(|p| p.0),
            Some(1)
        );
        assert_eq!(
            flow_too_deep(&format!("a:\n  b: [\n{deep}")).map(|p| p.0),
            Some(3)
        );
    }

    #[test]
    fn a_megabyte_of_brackets_is_refused_at_once() {
        let text = "[".repeat(MAX_FILE_BYTES as usize - 1);
        let e = err(&text);
        assert!(e.starts_with("f.yml:1:65:"), "{e}");
    }

    #[test]
    fn reading_stops_past_the_limit_and_names_bad_bytes() {
        let e = read_file(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("tug reads spec files up to"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.yml");
        std::fs::write(&p, b"a: 1\nb: caf\xe9\n").unwrap();
        let e = read_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("j.yml:2:7: YAML syntax error: the file is not UTF-8"),
            "{e}"
        );
        std::fs::write(&p, "a: 1\n").unwrap();
        assert_eq!(read_file(&p).unwrap(), "a: 1\n");
    }

    #[test]
    fn big_files_are_refused_by_size() {
        let text = format!("a: \"{}\"\n", "z".repeat(MAX_FILE_BYTES as usize));
        let e = err(&text);
        assert!(e.contains("1.0 MiB") && e.contains("1024 KiB"), "{e}");
    }
}
