//! Field types and serde helpers shared by jobs and environments: local paths, scalar maps, compute.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::document::Document;
use super::error::Marked;
use super::index::join;
use super::literal::ScalarString;

/// A path or URI as written in the file (`./src`, `file:data.csv`, `azureml:code:1`, `https://...`).
///
/// `local` is set for local paths: the path without any `file:` prefix, joined to the YAML
/// file's directory once the file is parsed (no I/O: the path need not exist). URIs and asset
/// references leave it `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePath {
    pub given: String,
    pub local: Option<PathBuf>,
}

impl SourcePath {
    /// Classify `given`; a local path stays relative until [`SourcePath::resolve`].
    pub fn parse(given: &str) -> SourcePath {
        let local = if let Some(rest) = given.strip_prefix("file://") {
            Some(PathBuf::from(rest))
        } else if let Some(rest) = given.strip_prefix("file:") {
            Some(PathBuf::from(rest))
        } else if has_scheme(given) {
            None
        } else {
            Some(PathBuf::from(given))
        };
        SourcePath {
            given: given.to_string(),
            local,
        }
    }

    /// Whether this is a path on this machine (as opposed to a URI or asset reference).
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// Join a relative local path to `base` (the YAML file's directory). Pure.
    pub fn resolve(&mut self, base: &Path) {
        if let Some(local) = &self.local {
            self.local = Some(base.join(local));
        }
    }
}

/// `scheme:` with a scheme of two or more chars (so `C:\x` stays a local path).
pub(crate) fn has_scheme(text: &str) -> bool {
    match text.find(':') {
        Some(i) if i >= 2 => text[..i]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')),
        _ => false,
    }
}

impl Serialize for SourcePath {
    /// The resolved local path when there is one (so a stored spec stays usable), else as given.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.local {
            Some(p) => s.serialize_str(&p.to_string_lossy()),
            None => s.serialize_str(&self.given),
        }
    }
}

impl<'de> Deserialize<'de> for SourcePath {
    /// Through a visitor, so that the error for an empty path carries the field's position.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SourcePath;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<SourcePath, E> {
                if text.trim().is_empty() {
                    return Err(Marked::invalid(
                        "`{field}` is empty",
                        "give a path relative to this file (e.g. `./src`) or a URI, or remove the line",
                    )
                    .into_de());
                }
                Ok(SourcePath::parse(text))
            }
        }
        d.deserialize_str(V)
    }
}

/// `deserialize_with` for fields where an empty value (`inputs:` with nothing under it)
/// means the default.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `deserialize_with` for maps of scalars that become strings (tags, environment variables).
pub(crate) fn scalar_map<'de, D>(d: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    let map: Option<BTreeMap<String, ScalarString>> = Option::deserialize(d)?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}

/// Re-render each value of a scalar map at `prefix` as Python `str()` of its YAML 1.1 value.
pub(crate) fn fix_scalar_map(doc: &Document, prefix: &str, map: &mut BTreeMap<String, String>) {
    for (key, value) in map.iter_mut() {
        *value = doc.scalar_text(&join(prefix, key), std::mem::take(value));
    }
}

/// `deserialize_with` for booleans written the YAML 1.1 way (`yes`, `On`, `off`), which
/// Azure reads as booleans; a plain `true`/`false` works too.
pub(crate) fn yaml11_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            match super::literal::resolve_plain(v) {
                super::literal::Literal::Bool(b) => Ok(b),
                _ => Err(E::invalid_type(de::Unexpected::Str(v), &self)),
            }
        }
    }
    d.deserialize_any(V)
}

/// [`yaml11_bool`] for an optional field.
pub(crate) fn yaml11_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    yaml11_bool(d).map(Some)
}

pub(crate) fn default_compute() -> String {
    "local".into()
}

/// `deserialize_with` for `compute`: `local`, `azureml:<name>`, an ARM id, or a bare name →
/// the bare target name.
pub(crate) fn compute<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a compute target name (`local` or `azureml:<name>`)")
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Ok(default_compute())
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            normalize_compute(v).map_err(Marked::into_de)
        }
    }
    d.deserialize_any(V)
}

/// The compute target's name, as tug's configuration knows it.
pub(crate) fn normalize_compute(text: &str) -> Result<String, Marked> {
    let text = text.trim();
    let name = match text.strip_prefix("azureml:") {
        Some(rest) => rest.rsplit('/').next().unwrap_or(rest),
        None => text,
    };
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(Marked::invalid(
            format!("`{text}` is not a compute target name for `{{field}}`"),
            "write `compute: local`, `compute: azureml:<name>` or just the target's name (letters, digits, `-`, `_`)",
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_and_uris() {
        assert!(SourcePath::parse("./src").is_local());
        assert_eq!(
            SourcePath::parse("file:data/x.csv").local,
            Some(PathBuf::from("data/x.csv"))
        );
        assert_eq!(
            SourcePath::parse("file:///abs/x").local,
            Some(PathBuf::from("/abs/x"))
        );
        assert!(!SourcePath::parse("azureml:code:1").is_local());
        assert!(!SourcePath::parse("https://x.y/z.csv").is_local());
        assert!(!SourcePath::parse("wasbs://c@a.blob.core.windows.net/x").is_local());
        assert!(SourcePath::parse("C:\\data").is_local());
    }

    #[test]
    fn resolving_joins_the_yaml_directory() {
        let mut p = SourcePath::parse("../data");
        p.resolve(Path::new("/jobs/train"));
        assert_eq!(p.local, Some(PathBuf::from("/jobs/train/../data")));
        let mut abs = SourcePath::parse("/srv/data");
        abs.resolve(Path::new("/jobs"));
        assert_eq!(abs.local, Some(PathBuf::from("/srv/data")));
    }

    #[test]
    fn compute_names_are_normalized() {
        assert_eq!(normalize_compute("local").unwrap(), "local");
        assert_eq!(
            normalize_compute("azureml:cpu-cluster").unwrap(),
            "cpu-cluster"
        );
        assert_eq!(normalize_compute("gpu_box").unwrap(), "gpu_box");
        assert_eq!(
            normalize_compute("azureml:/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w/computes/big").unwrap(),
            "big"
        );
        assert!(normalize_compute("azureml:").is_err());
        assert!(normalize_compute("my cluster").is_err());
    }
}
