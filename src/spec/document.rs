//! One spec file being read: its text, position index, overrides, and how errors get located.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::diagnose;
use super::error::{Origin, SpecError};
use super::index::{Pos, Raw, SourceIndex, Style};
use super::literal::{Literal, ScalarString, resolve_plain};
use super::overrides;

/// A parsed YAML file plus everything needed to point errors back into it.
pub(crate) struct Document<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    /// Shared by the views [`Document::under`] makes.
    pub index: std::rc::Rc<SourceIndex>,
    /// The YAML value, with overrides applied.
    pub value: Value,
    /// `(field path, raw value text)` of each `--set`.
    overrides: Vec<(String, String)>,
    /// What the typed reading sees: the value written back out when overrides changed it.
    typed_text: Option<String>,
    /// What the file is, for messages: `command job`, `environment`, `conda file`.
    pub what: &'static str,
    /// The field every field this view is asked about lives under (`jobs.train`), so the
    /// checks of a command job run unchanged on a pipeline's step; empty for the file.
    prefix: String,
}

impl<'a> Document<'a> {
    /// Parse `text` as YAML and apply `overrides`.
    pub fn load(
        path: &'a Path,
        text: &'a str,
        overrides: &[(&str, &str)],
        what: &'static str,
    ) -> Result<Document<'a>, SpecError> {
        // First the bounds (size, depth, alias expansion): nothing below may recurse or
        // allocate without limit on a hostile file.
        super::limits::check(path, text)?;
        let index = SourceIndex::build(text);
        let mut value: Value =
            serde_yaml::from_str(text).map_err(|e| diagnose::load_error(&e, path, text, &index))?;
        let keys = overrides::apply(&mut value, overrides)?;
        let typed_text = if keys.is_empty() {
            None
        } else {
            Some(
                serde_yaml::to_string(&value).map_err(|e| SpecError::InvalidValue {
                    origin: Origin::Override {
                        key: overrides[0].0.to_string(),
                    },
                    field: keys[0].clone(),
                    message: format!("the overridden document cannot be written back as YAML: {e}"),
                    help: "simplify the --set values (plain scalars, `[a, b]` or `{k: v}`)".into(),
                })?,
            )
        };
        let overrides = keys
            .into_iter()
            .zip(overrides.iter().map(|(_, v)| v.to_string()))
            .collect();
        Ok(Document {
            path,
            text,
            index: std::rc::Rc::new(index),
            value,
            overrides,
            typed_text,
            what,
            prefix: String::new(),
        })
    }

    /// A view of the mapping at `field` (`jobs.train`) as if it were a file of its own:
    /// fields are given relative to it, errors name and locate them in the whole file.
    pub fn under(&self, field: &str, what: &'static str) -> Document<'a> {
        let full = self.full(field);
        let mut value = &self.value;
        for key in full.split('.').filter(|k| !k.is_empty()) {
            value = value.get(key).unwrap_or(&Value::Null);
        }
        Document {
            path: self.path,
            text: self.text,
            index: self.index.clone(),
            value: value.clone(),
            overrides: self.overrides.clone(),
            typed_text: self.typed_text.clone(),
            what,
            prefix: full,
        }
    }

    /// `field` as the whole file names it.
    pub fn full(&self, field: &str) -> String {
        match (self.prefix.is_empty(), field.is_empty()) {
            (true, _) => field.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{field}", self.prefix),
        }
    }

    /// Read the (overridden) document as `T`, translating serde errors into [`SpecError`]s.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, SpecError> {
        let text = self.typed_text.as_deref().unwrap_or(self.text);
        serde_yaml::from_str(text).map_err(|e| diagnose::typed_error(&e, self))
    }

    /// Whether serde's error positions refer to the file itself (no overrides rewrote it).
    pub fn marks_are_exact(&self) -> bool {
        self.typed_text.is_none()
    }

    /// The `--set` key that produced `field` (or an ancestor of it), if any.
    pub fn override_for(&self, field: &str) -> Option<&str> {
        self.overrides.iter().map(|(k, _)| k.as_str()).find(|k| {
            field == *k
                || field
                    .strip_prefix(*k)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }

    /// Where an error about `field` points: the override that set it, else its key (or value)
    /// in the file, else `mark` (serde's position), else the nearest indexed ancestor.
    pub fn origin(&self, field: &str, at_key: bool, mark: Option<Pos>) -> Origin {
        self.origin_of(&self.full(field), at_key, mark)
    }

    fn origin_of(&self, field: &str, at_key: bool, mark: Option<Pos>) -> Origin {
        if let Some(key) = self.override_for(field) {
            return Origin::Override {
                key: key.to_string(),
            };
        }
        let exact = self.index.node(field).and_then(|n| {
            if at_key {
                n.key.or(n.value)
            } else {
                n.value.or(n.key)
            }
        });
        let pos = exact
            .or(if self.marks_are_exact() { mark } else { None })
            .or_else(|| self.index.locate(field, at_key))
            .or_else(|| first_content(self.text));
        Origin::File {
            path: self.path.to_path_buf(),
            pos,
        }
    }

    /// The source text of the scalar at `field`, from the override that set it or the file.
    pub fn raw(&self, field: &str) -> Option<Raw> {
        let field = &self.full(field);
        if let Some((_, text)) = self.overrides.iter().find(|(k, _)| k == field) {
            let flow = text.trim_start().starts_with(['[', '{']);
            return (!flow).then(|| Raw {
                text: text.trim().to_string(),
                style: Style::Plain,
                multiline: false,
            });
        }
        if self.override_for(field).is_some() {
            return None;
        }
        self.index.raw(field).cloned()
    }

    /// The YAML 1.1 reading of the plain scalar at `field`, if it is one (unquoted, on one
    /// line) and the index's text for it reads back under YAML 1.2 as `provisional`, serde's
    /// value (a cross-check that the index found the right text).
    fn reread_plain<T: DeserializeOwned + PartialEq>(
        &self,
        field: &str,
        provisional: &T,
    ) -> Option<Literal> {
        let raw = self.raw(field)?;
        if raw.style != Style::Plain || raw.multiline {
            return None;
        }
        let same = serde_yaml::from_str::<T>(&raw.text).is_ok_and(|v| v == *provisional);
        same.then(|| resolve_plain(&raw.text))
    }

    /// A literal as PyYAML would have read it: serde's YAML 1.2 value, re-resolved from the
    /// raw source text when the scalar was plain (see `literal.rs`).
    pub fn literal(&self, field: &str, provisional: Literal) -> Literal {
        self.reread_plain(field, &provisional)
            .unwrap_or(provisional)
    }

    /// A scalar-as-string (environment variable, tag) as Python `str()` would write it.
    pub fn scalar_text(&self, field: &str, provisional: String) -> String {
        let guess = ScalarString(provisional);
        match self.reread_plain(field, &guess) {
            Some(Literal::Null) | None => guess.0,
            Some(other) => other.render(),
        }
    }

    /// A `version:` as written (`version: 1` is `"1"`, not `1.0`), if given.
    pub fn version_text(&self, field: &str, value: Option<Value>) -> Option<String> {
        value.map(|v| match v {
            Value::String(s) => s,
            other => self.scalar_text(
                field,
                serde_yaml::to_string(&other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            ),
        })
    }

    pub fn invalid(
        &self,
        field: &str,
        at_key: bool,
        message: String,
        help: impl Into<String>,
    ) -> SpecError {
        let field = self.full(field);
        SpecError::InvalidValue {
            origin: self.origin_of(&field, at_key, None),
            field,
            message,
            help: help.into(),
        }
    }

    pub fn unsupported(
        &self,
        field: &str,
        at_key: bool,
        message: String,
        help: impl Into<String>,
    ) -> SpecError {
        let field = self.full(field);
        SpecError::Unsupported {
            origin: self.origin_of(&field, at_key, None),
            field,
            message,
            help: help.into(),
        }
    }

    /// A required `field` that is absent; the error points at the key of `near` (the field
    /// that makes it required, or `""` for the top of the file).
    pub fn missing(
        &self,
        field: &str,
        near: &str,
        message: String,
        help: impl Into<String>,
    ) -> SpecError {
        SpecError::MissingField {
            origin: self.origin(near, true, None),
            field: self.full(field),
            message,
            help: help.into(),
        }
    }

    /// An expression error inside `field` (a command), pointing at `needle` when found.
    pub fn expression(
        &self,
        field: &str,
        needle: &str,
        message: String,
        help: impl Into<String>,
    ) -> SpecError {
        let field = self.full(field);
        let mut origin = self.origin_of(&field, false, None);
        if let Origin::File { pos, .. } = &mut origin
            && let Some(found) = self.index.find_in_value(self.text, &field, needle)
        {
            *pos = Some(found);
        }
        SpecError::Expression {
            origin,
            field,
            message,
            help: help.into(),
        }
    }

    /// The top-level mapping, or an error saying what a file of this kind must look like.
    pub fn root_mapping(&self, example: &str) -> Result<&serde_yaml::Mapping, SpecError> {
        match &self.value {
            Value::Mapping(m) => Ok(m),
            Value::Null => Err(SpecError::InvalidValue {
                origin: Origin::File {
                    path: self.path.to_path_buf(),
                    pos: None,
                },
                field: String::new(),
                message: format!("the file is empty; expected a {}", self.what),
                help: format!("a minimal {} looks like:\n{example}", self.what),
            }),
            _ => Err(SpecError::InvalidValue {
                origin: Origin::File {
                    path: self.path.to_path_buf(),
                    pos: first_content(self.text),
                },
                field: String::new(),
                message: format!(
                    "a {} file must be a mapping of keys, but this one is {}",
                    self.what,
                    diagnose::describe_value(&self.value)
                ),
                help: format!("a minimal {} looks like:\n{example}", self.what),
            }),
        }
    }
}

/// The top-level keys of `value` (strings only).
pub(crate) fn top_keys(map: &serde_yaml::Mapping) -> impl Iterator<Item = &str> {
    map.keys().filter_map(Value::as_str)
}

/// The position of the first line that is not blank, a comment or a document marker.
fn first_content(text: &str) -> Option<Pos> {
    text.lines().enumerate().find_map(|(n, line)| {
        let trimmed = line.trim_start();
        let skip = trimmed.is_empty()
            || trimmed.starts_with('#')
            || trimmed.starts_with("---")
            || trimmed.starts_with('%');
        (!skip).then(|| (n + 1, line.chars().count() - trimmed.chars().count() + 1))
    })
}
