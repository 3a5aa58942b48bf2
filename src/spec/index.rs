//! A position index of YAML source: dotted field path → line/column of key and value, plus raw scalar text.
//!
//! serde_norway reports a position only for errors it raises itself, and never tells whether a
//! scalar was quoted. This index is a second, deliberately small reading of the same text: it
//! walks block-style YAML line by line (indentation, `key:`, `- ` items, block scalars,
//! quoted and multi-line scalars) and flow collections (`{a: 1, b: [x, y]}`) char by char, and
//! records for every node its path (`inputs.lr`, `dependencies[2].pip[0]`, serde_norway's own
//! path syntax), where its key and value start, and for scalars the source text and style.
//! It runs only on text that already parsed as YAML, and every lookup may come back empty
//! (anchors, complex keys...): callers then fall back to a coarser location.

use std::collections::HashMap;

/// A 1-based `(line, column)`, columns counted in chars.
pub(crate) type Pos = (usize, usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    /// `|` or `>`.
    Block,
    /// `[...]` or `{...}`.
    Flow,
    /// `*anchor`.
    Alias,
    /// A plain scalar with an explicit tag (`!!str 1`): its tag decides, not its text.
    Tagged,
}

/// The source text of a scalar node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Raw {
    /// For plain scalars the text without trailing comment; for quoted ones including quotes.
    pub text: String,
    pub style: Style,
    /// Continued on later lines (a folded plain or quoted scalar).
    pub multiline: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub key: Option<Pos>,
    pub value: Option<Pos>,
    /// Last line of the value (for scalars; the key's line otherwise).
    pub end_line: usize,
    pub raw: Option<Raw>,
}

/// Node positions by path, built by [`SourceIndex::build`].
#[derive(Debug, Default)]
pub(crate) struct SourceIndex {
    pub(super) nodes: HashMap<String, Node>,
    pub(super) duplicates: HashMap<String, Pos>,
}

/// `parent.key` (or `key` at the root).
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The path one level up (`a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``).
pub(crate) fn parent_of(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']')
        && let Some(i) = path.rfind('[')
    {
        return Some(&path[..i]);
    }
    Some(path.rfind('.').map_or("", |i| &path[..i]))
}

impl SourceIndex {
    /// Index `text`. Never fails; what it cannot follow is simply left out.
    pub fn build(text: &str) -> SourceIndex {
        super::scan::scan(text)
    }

    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The position of `path`'s key (or value), or of its nearest indexed ancestor.
    pub fn locate(&self, path: &str, at_key: bool) -> Option<Pos> {
        let mut current = Some(path);
        while let Some(p) = current {
            if let Some(node) = self.nodes.get(p) {
                let first = if at_key {
                    node.key.or(node.value)
                } else {
                    node.value.or(node.key)
                };
                if first.is_some() {
                    return first;
                }
            }
            current = parent_of(p);
        }
        None
    }

    /// Where a key that occurs twice appears the second time.
    pub fn duplicate(&self, path: &str) -> Option<Pos> {
        self.duplicates.get(path).copied()
    }

    /// The raw source of a scalar node.
    pub fn raw(&self, path: &str) -> Option<&Raw> {
        self.nodes.get(path)?.raw.as_ref()
    }

    /// Where `needle` occurs in the source of `path`'s value (e.g. a `${{...}}` in `command`).
    pub fn find_in_value(&self, text: &str, path: &str, needle: &str) -> Option<Pos> {
        let node = self.nodes.get(path)?;
        let (first, col) = node.value?;
        for (n, line) in text
            .lines()
            .enumerate()
            .take(node.end_line.max(first))
            .skip(first - 1)
        {
            let chars: Vec<char> = line.chars().collect();
            let start = if n + 1 == first { col - 1 } else { 0 };
            let hay: String = chars.get(start..).unwrap_or_default().iter().collect();
            if let Some(byte) = hay.find(needle) {
                return Some((n + 1, start + hay[..byte].chars().count() + 1));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: >-
  python train.py
  --lr ${{inputs.lr}}
inputs:
  lr: 1e-3   # a string in YAML 1.1
  flag: 'yes'
  data:
    type: uri_folder
    path: ./data
  inline: {value: 0.5, mode: \"x\"}
environment:
  image: python:3.11
conda:
  dependencies:
  - python=3.10
  - pip:
    - numpy
  -
    nested: 1
tags: [a, {b: c}]
";

    #[test]
    fn positions_of_keys_and_values() {
        let ix = SourceIndex::build(JOB);
        assert_eq!(ix.node("command").unwrap().key, Some((2, 1)));
        assert_eq!(ix.node("inputs.lr").unwrap().key, Some((6, 3)));
        assert_eq!(ix.node("inputs.lr").unwrap().value, Some((6, 7)));
        assert_eq!(ix.node("inputs.data.path").unwrap().value, Some((10, 11)));
        assert_eq!(ix.node("environment.image").unwrap().key, Some((13, 3)));
        assert_eq!(
            ix.node("conda.dependencies[0]").unwrap().value,
            Some((16, 5))
        );
        assert_eq!(
            ix.node("conda.dependencies[1].pip[0]").unwrap().value,
            Some((18, 7))
        );
        assert_eq!(
            ix.node("conda.dependencies[2].nested").unwrap().key,
            Some((20, 5))
        );
        assert_eq!(ix.node("inputs.inline.mode").unwrap().key, Some((11, 24)));
        assert_eq!(ix.node("tags[1].b").unwrap().value, Some((21, 15)));
        assert_eq!(ix.locate("inputs.data.mode", true), Some((8, 3)));
    }

    #[test]
    fn raw_scalars_keep_source_text_and_style() {
        let ix = SourceIndex::build(JOB);
        let lr = ix.raw("inputs.lr").unwrap();
        assert_eq!((lr.text.as_str(), lr.style), ("1e-3", Style::Plain));
        assert_eq!(ix.raw("inputs.flag").unwrap().style, Style::SingleQuoted);
        assert_eq!(ix.raw("inputs.inline.value").unwrap().text, "0.5");
        assert_eq!(
            ix.raw("inputs.inline.mode").unwrap().style,
            Style::DoubleQuoted
        );
        assert_eq!(ix.raw("command").unwrap().style, Style::Block);
        assert_eq!(ix.node("command").unwrap().end_line, 4);
    }

    #[test]
    fn finds_text_inside_a_block_scalar() {
        let ix = SourceIndex::build(JOB);
        assert_eq!(
            ix.find_in_value(JOB, "command", "${{inputs.lr}}"),
            Some((4, 8))
        );
    }

    #[test]
    fn duplicates_and_multiline_plain() {
        let text = "a: 1\nb: first\n  second\na: 2\n";
        let ix = SourceIndex::build(text);
        assert_eq!(ix.duplicate("a"), Some((4, 1)));
        assert!(ix.raw("b").unwrap().multiline);
        assert_eq!(ix.node("b").unwrap().end_line, 3);
    }

    #[test]
    fn sequences_at_the_same_indent_as_their_key() {
        let text = "deps:\n- a\n- b: 1\n  c: 2\nnext: x\n";
        let ix = SourceIndex::build(text);
        assert_eq!(ix.node("deps[1].c").unwrap().key, Some((4, 3)));
        assert_eq!(ix.node("next").unwrap().key, Some((5, 1)));
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_of("a.b[2]"), Some("a.b"));
        assert_eq!(parent_of("a.b"), Some("a"));
        assert_eq!(parent_of("a"), Some(""));
        assert_eq!(parent_of(""), None);
    }
}
