//! `SpecError`: every way a spec file can be wrong, naming file:line:col, the field and a fix.

use std::fmt;
use std::path::PathBuf;

/// Where an error points: a place in a file, a `--set` override, or a string handed in directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file, with the 1-based line and column when known.
    File {
        path: PathBuf,
        pos: Option<(usize, usize)>,
    },
    /// A `--set key=value` override given on the command line.
    Override { key: String },
    /// Text that came from no file (for example a command being rendered at run time).
    Inline,
}

impl fmt::Display for Origin {
    /// The `file:line:col: ` prefix of a message (empty for [`Origin::Inline`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File {
                path,
                pos: Some((line, col)),
            } => write!(f, "{}:{line}:{col}: ", path.display()),
            Origin::File { path, pos: None } => write!(f, "{}: ", path.display()),
            Origin::Override { key } => write!(f, "--set {key}: "),
            Origin::Inline => Ok(()),
        }
    }
}

/// An error in a job, environment or conda file (or in a `--set` override of one).
///
/// `Display` gives `<file>:<line>:<col>: <message>`, an indented `field:` line (the dotted
/// path, when the error is about one field) and a `help:` line that
/// says how to fix it. Every variant names the dotted `field` it is about (empty when the error
/// is about the file as a whole); the message already contains the details (the nearest valid
/// field, the expected kind of value...).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// The text is not valid YAML.
    #[error("{origin}YAML syntax error: {message}\n  help: {help}")]
    Syntax {
        origin: Origin,
        message: String,
        help: String,
    },
    /// A key that the schema does not have (usually a misspelling).
    #[error("{origin}{message}{}\n  help: {help}", field_line(.field))]
    UnknownField {
        origin: Origin,
        field: String,
        message: String,
        help: String,
    },
    /// A required key is absent.
    #[error("{origin}{message}{}\n  help: {help}", field_line(.field))]
    MissingField {
        origin: Origin,
        field: String,
        message: String,
        help: String,
    },
    /// The same key appears twice in one mapping.
    #[error("{origin}{message}{}\n  help: {help}", field_line(.field))]
    DuplicateKey {
        origin: Origin,
        field: String,
        message: String,
        help: String,
    },
    /// A value of the wrong kind (a list where a string belongs, text where a number belongs...).
    #[error("{origin}{message}{}\n  help: {help}", field_line(.field))]
    InvalidType {
        origin: Origin,
        field: String,
        message: String,
        help: String,
    },
    /// A value of the right kind that is not allowed (unknown enum value, bad reference, 0...).
    #[error("{origin}{message}{}\n  help: {help}", field_line(.field))]
    InvalidValue {
        origin: Origin,
        field: String,
        message: String,
        help: String,
    },
    /// Valid for Azure ML, but not something tug can do (yet).
    #[error("{origin}{message}{}\n  help: {help}", field_line(.field))]
    Unsupported {
        origin: Origin,
        field: String,
        message: String,
        help: String,
    },
    /// A `${{...}}` / `$[[...]]` expression that is malformed or refers to nothing.
    #[error("{origin}{message}{}\n  help: {help}", field_line(.field))]
    Expression {
        origin: Origin,
        field: String,
        message: String,
        help: String,
    },
}

/// The `field:` line of an error's display (none for errors about the whole file).
fn field_line(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("\n  field: {field}")
    }
}

impl SpecError {
    /// Where the error points.
    pub fn origin(&self) -> &Origin {
        match self {
            SpecError::Syntax { origin, .. }
            | SpecError::UnknownField { origin, .. }
            | SpecError::MissingField { origin, .. }
            | SpecError::DuplicateKey { origin, .. }
            | SpecError::InvalidType { origin, .. }
            | SpecError::InvalidValue { origin, .. }
            | SpecError::Unsupported { origin, .. }
            | SpecError::Expression { origin, .. } => origin,
        }
    }

    /// The 1-based `(line, column)` in the file, when the error points into a file.
    pub fn location(&self) -> Option<(usize, usize)> {
        match self.origin() {
            Origin::File { pos, .. } => *pos,
            _ => None,
        }
    }

    /// The dotted path of the field the error is about (`inputs.lr.mode`), if any.
    pub fn field(&self) -> Option<&str> {
        let field = match self {
            SpecError::Syntax { .. } => return None,
            SpecError::UnknownField { field, .. }
            | SpecError::MissingField { field, .. }
            | SpecError::DuplicateKey { field, .. }
            | SpecError::InvalidType { field, .. }
            | SpecError::InvalidValue { field, .. }
            | SpecError::Unsupported { field, .. }
            | SpecError::Expression { field, .. } => field,
        };
        (!field.is_empty()).then_some(field.as_str())
    }

    /// What is wrong (the message without position or help).
    pub fn message(&self) -> &str {
        match self {
            SpecError::Syntax { message, .. }
            | SpecError::UnknownField { message, .. }
            | SpecError::MissingField { message, .. }
            | SpecError::DuplicateKey { message, .. }
            | SpecError::InvalidType { message, .. }
            | SpecError::InvalidValue { message, .. }
            | SpecError::Unsupported { message, .. }
            | SpecError::Expression { message, .. } => message,
        }
    }

    /// The `help:` text: how to fix the problem.
    pub fn help(&self) -> &str {
        match self {
            SpecError::Syntax { help, .. }
            | SpecError::UnknownField { help, .. }
            | SpecError::MissingField { help, .. }
            | SpecError::DuplicateKey { help, .. }
            | SpecError::InvalidType { help, .. }
            | SpecError::InvalidValue { help, .. }
            | SpecError::Unsupported { help, .. }
            | SpecError::Expression { help, .. } => help,
        }
    }
}

/// Levenshtein edit distance between two strings, counted in chars.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Edit distance that also counts swapping two adjacent chars as one edit (optimal string
/// alignment), so `mdoe` is one edit from `mode`, as a person would see it.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![(0..=b.len()).collect::<Vec<usize>>()];
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (rows[i - 1][j] + 1)
                .min(row[j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(rows[i - 2][j - 2] + 1);
            }
        }
        rows.push(row);
    }
    rows[a.len()][b.len()]
}

/// The candidate nearest to `word`, if it is near enough to be a plausible misspelling:
/// a case-insensitive match, or an [`edit_distance`] of at most a third of the longer word.
pub fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        let distance = edit_distance(&lower, &candidate.to_ascii_lowercase());
        let longest = lower.chars().count().max(candidate.chars().count());
        if distance <= (longest / 3).max(1) && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `` `a`, `b`, `c` `` for help texts.
pub(crate) fn backticked<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a custom `Deserialize` impl in this module reports. serde only carries a message
/// string from inside a deserializer, so the parts travel encoded in it (see [`Marked::decode`])
/// and `diagnose` turns them back into a [`SpecError`] with the file position and field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marked {
    pub kind: MarkedKind,
    /// Sub-path below the node being deserialized (`"mode"`, `"build"`), or empty.
    pub sub: String,
    /// Whether the error is about the key of `sub` (true) or its value.
    pub at_key: bool,
    /// The message; `{field}` is replaced by the full dotted field path.
    pub message: String,
    pub help: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkedKind {
    Invalid,
    Unsupported,
    Missing,
}

const MARK: char = '\u{1e}';
const SEP: char = '\u{1f}';

impl Marked {
    pub fn invalid(message: impl Into<String>, help: impl Into<String>) -> Self {
        Marked {
            kind: MarkedKind::Invalid,
            sub: String::new(),
            at_key: false,
            message: message.into(),
            help: help.into(),
        }
    }

    pub fn unsupported(message: impl Into<String>, help: impl Into<String>) -> Self {
        Marked {
            kind: MarkedKind::Unsupported,
            ..Marked::invalid(message, help)
        }
    }

    pub fn missing(sub: &str, help: impl Into<String>) -> Self {
        Marked {
            kind: MarkedKind::Missing,
            sub: sub.to_string(),
            at_key: true,
            message: String::new(),
            help: help.into(),
        }
    }

    /// Point at the value of `sub` below the current node.
    pub fn at(mut self, sub: &str) -> Self {
        self.sub = sub.to_string();
        self
    }

    /// Point at the key of `sub` below the current node.
    pub fn at_key(mut self, sub: &str) -> Self {
        self.sub = sub.to_string();
        self.at_key = true;
        self
    }

    /// As a [`SpecError`] about `field` with no file (for strings parsed on their own).
    pub fn into_inline(self, field: &str) -> SpecError {
        let message = self.message.replace("{field}", field);
        let (origin, field, help) = (Origin::Inline, field.to_string(), self.help);
        match self.kind {
            MarkedKind::Invalid => SpecError::InvalidValue {
                origin,
                field,
                message,
                help,
            },
            MarkedKind::Unsupported => SpecError::Unsupported {
                origin,
                field,
                message,
                help,
            },
            MarkedKind::Missing => SpecError::MissingField {
                message: format!("missing required field `{field}`"),
                origin,
                field,
                help,
            },
        }
    }

    /// Encode as a serde error of any deserializer.
    pub fn into_de<E: serde::de::Error>(self) -> E {
        E::custom(self)
    }

    /// Decode a message produced by [`Marked`]'s `Display`.
    pub fn decode(text: &str) -> Option<Marked> {
        let rest = text.strip_prefix(MARK)?;
        let mut parts = rest.split(SEP);
        let kind = match parts.next()? {
            "I" => MarkedKind::Invalid,
            "U" => MarkedKind::Unsupported,
            "M" => MarkedKind::Missing,
            _ => return None,
        };
        let sub = parts.next()?.to_string();
        let at_key = parts.next()? == "K";
        let message = parts.next()?.to_string();
        let help = parts.next()?.to_string();
        Some(Marked {
            kind,
            sub,
            at_key,
            message,
            help,
        })
    }
}

impl fmt::Display for Marked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            MarkedKind::Invalid => "I",
            MarkedKind::Unsupported => "U",
            MarkedKind::Missing => "M",
        };
        let anchor = if self.at_key { "K" } else { "V" };
        write!(
            f,
            "{MARK}{kind}{SEP}{}{SEP}{anchor}{SEP}{}{SEP}{}",
            self.sub, self.message, self.help
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("comand", "command"), 1);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("mdoe", "mode"), 1);
        assert_eq!(levenshtein("mdoe", "mode"), 2);
        assert_eq!(edit_distance("imgae", "image"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }

    #[test]
    fn nearest_only_suggests_close_words() {
        let fields = ["command", "code", "compute", "environment", "inputs"];
        assert_eq!(nearest("comand", fields), Some("command"));
        assert_eq!(nearest("enviroment", fields), Some("environment"));
        assert_eq!(nearest("Inputs", fields), Some("inputs"));
        assert_eq!(nearest("banana", fields), None);
        assert_eq!(nearest("xy", fields), None);
    }

    #[test]
    fn marked_round_trips_through_a_string() {
        let m = Marked::invalid("bad `{field}`", "fix it").at_key("mode");
        assert_eq!(Marked::decode(&m.to_string()), Some(m));
        assert_eq!(Marked::decode("plain message"), None);
    }

    #[test]
    fn display_has_location_and_help() {
        let e = SpecError::UnknownField {
            origin: Origin::File {
                path: "train.yml".into(),
                pos: Some((7, 3)),
            },
            field: "comand".into(),
            message: "unknown field `comand` in command job; did you mean `command`?".into(),
            help: "rename `comand` to `command`".into(),
        };
        assert_eq!(
            e.to_string(),
            "train.yml:7:3: unknown field `comand` in command job; did you mean `command`?\n  field: comand\n  help: rename `comand` to `command`"
        );
        assert_eq!(e.location(), Some((7, 3)));
        assert_eq!(e.field(), Some("comand"));
        let inline = SpecError::Expression {
            origin: Origin::Inline,
            field: "command".into(),
            message: "m".into(),
            help: "h".into(),
        };
        assert_eq!(inline.to_string(), "m\n  field: command\n  help: h");
        assert_eq!(inline.location(), None);
    }
}
