//! Azure ML's curated environments, mapped to local ones. Pure.
//!
//! Azure job files name environments that live in Azure's cloud: the `azureml` registry
//! (`azureml://registries/azureml/environments/sklearn-1.5/labels/latest`) and the
//! workspace-level curated names (`azureml:AzureML-sklearn-1.5@latest`, a prefix Azure
//! reserves, so no user environment can carry it). tug answers both from one map: entries
//! in the workspace's `.tug/config.yaml` (`curated:`) first, then built-in defaults that
//! point the common families at offline stand-in images built by `images/build-curated.sh`.
//!
//! Keys are compared without the `AzureML-` prefix and case-insensitively, so
//! `AzureML-sklearn-1.5` and the registry's `sklearn-1.5` are one entry. A key ending in
//! `*` matches every name it is a prefix of; the longest matching key wins, and an exact
//! key beats any pattern.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::environment::{AssetVersion, EnvironmentRef};

/// The registry whose environments are Azure's curated ones.
pub const AZURE_REGISTRY: &str = "azureml";
/// The prefix Azure reserves for curated environment names in a workspace.
pub const CURATED_PREFIX: &str = "AzureML-";
/// The repository the stand-in images are tagged into.
pub const STAND_IN_REPOSITORY: &str = "tug/curated";

/// What a curated name stands for locally: one of the two, as written in `.tug/config.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CuratedTarget {
    /// A local image with `python3` (used as an environment's `image:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A registered environment: `azureml:<name>:<version>` or `azureml:<name>@latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// A curated name resolved to what a job runs.
#[derive(Debug, Clone, PartialEq)]
pub enum StandIn {
    Image(String),
    Registered { name: String, version: AssetVersion },
}

/// Where a map entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntrySource {
    Config,
    Builtin,
}

/// One line of the map (what `tug environment list --curated` shows).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CuratedEntry {
    /// The key as normalized: lower case, no `AzureML-` prefix; may end in `*`.
    pub key: String,
    /// `image: <ref>` or `environment: azureml:<name>...`.
    pub stand_in: String,
    pub source: EntrySource,
    /// What the stand-in holds (built-in entries), so a user can judge the fit.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub contents: String,
}

/// The built-in stand-ins: (key, image variant, contents). The images are built by
/// `images/build-curated.sh <variant>` from Debian packages and a host-side wheelhouse.
const BUILTIN: &[(&str, &str, &str)] = &[
    (
        "sklearn-*",
        "sklearn",
        "Python 3.11, scikit-learn 1.2, numpy 1.24, scipy 1.10, pandas 1.5 (Debian 12), mlflow-skinny",
    ),
    (
        "lightgbm-*",
        "lightgbm",
        "the sklearn stand-in + lightgbm 3.3.5",
    ),
    (
        "minimal",
        "minimal",
        "Python 3.11 (Debian 12), mlflow-skinny",
    ),
    (
        "minimal-*",
        "minimal",
        "Python 3.11 (Debian 12), mlflow-skinny",
    ),
];

/// The image tag of a built-in stand-in variant.
pub fn stand_in_image(variant: &str) -> String {
    format!("{STAND_IN_REPOSITORY}:{variant}")
}

/// The curated name an environment reference points at, normalized; `None` for
/// references to the workspace's own environments or to other registries.
pub fn curated_name(reference: &EnvironmentRef) -> Option<String> {
    match reference {
        EnvironmentRef::Registry { registry, name, .. } if registry == AZURE_REGISTRY => {
            Some(normalize(name))
        }
        EnvironmentRef::Registered { name, .. } if is_curated_name(name) => Some(normalize(name)),
        _ => None,
    }
}

/// Whether `name` carries Azure's reserved curated prefix.
pub fn is_curated_name(name: &str) -> bool {
    name.len() > CURATED_PREFIX.len()
        && name[..CURATED_PREFIX.len()].eq_ignore_ascii_case(CURATED_PREFIX)
}

/// A key or name as the map compares it.
pub fn normalize(name: &str) -> String {
    let name = name.trim();
    let bare = if is_curated_name(name) {
        &name[CURATED_PREFIX.len()..]
    } else {
        name
    };
    bare.to_ascii_lowercase()
}

/// Why a `curated:` entry in the workspace config cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("`curated.{key}`: give exactly one of `image:` or `environment:`")]
    NotOne { key: String },
    #[error("`curated.{key}.environment: {given}` is not a registered environment reference")]
    BadReference { key: String, given: String },
    #[error("`curated.{key}` has an empty name")]
    EmptyKey { key: String },
}

/// The whole map: the workspace's entries (checked) before the built-ins.
pub fn entries(config: &BTreeMap<String, CuratedTarget>) -> Result<Vec<CuratedEntry>, EntryError> {
    let mut out = Vec::new();
    for (key, target) in config {
        let normalized = normalize(key);
        if normalized.trim_end_matches('*').is_empty() {
            return Err(EntryError::EmptyKey { key: key.clone() });
        }
        let stand_in = match (&target.image, &target.environment) {
            (Some(image), None) => format!("image: {image}"),
            (None, Some(env)) => {
                registered(env).ok_or_else(|| EntryError::BadReference {
                    key: key.clone(),
                    given: env.clone(),
                })?;
                format!("environment: {env}")
            }
            _ => return Err(EntryError::NotOne { key: key.clone() }),
        };
        out.push(CuratedEntry {
            key: normalized,
            stand_in,
            source: EntrySource::Config,
            contents: String::new(),
        });
    }
    out.extend(BUILTIN.iter().map(|(key, variant, contents)| CuratedEntry {
        key: key.to_string(),
        stand_in: format!("image: {}", stand_in_image(variant)),
        source: EntrySource::Builtin,
        contents: contents.to_string(),
    }));
    Ok(out)
}

fn registered(text: &str) -> Option<(String, AssetVersion)> {
    match EnvironmentRef::parse(text).ok()? {
        // A mapping onto another curated name would only loop.
        EnvironmentRef::Registered { name, version } if !is_curated_name(&name) => {
            Some((name, version))
        }
        _ => None,
    }
}

fn matches(key: &str, name: &str) -> bool {
    match key.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => key == name,
    }
}

/// The entry for the normalized curated `name`: config before built-in, then an exact key
/// before patterns, then the longest pattern.
pub fn lookup<'a>(entries: &'a [CuratedEntry], name: &str) -> Option<&'a CuratedEntry> {
    let rank = |e: &CuratedEntry| {
        let source = (e.source == EntrySource::Config) as usize;
        let exact = !e.key.ends_with('*') as usize;
        (source, exact, e.key.len())
    };
    entries
        .iter()
        .filter(|e| matches(&e.key, name))
        .max_by_key(|e| rank(e))
}

/// What an entry's stand-in resolves to.
pub fn stand_in(entry: &CuratedEntry) -> StandIn {
    if let Some(image) = entry.stand_in.strip_prefix("image: ") {
        return StandIn::Image(image.to_string());
    }
    let text = entry.stand_in.trim_start_matches("environment: ");
    let (name, version) = registered(text).expect("checked when the map was read");
    StandIn::Registered { name, version }
}

/// The message for a curated name with no entry: what to add, and where.
pub fn missing_help(name: &str) -> String {
    format!(
        "tug has no stand-in for the curated environment `{name}`; map it to a local one in .tug/config.yaml:\n\
         \x20     curated:\n\
         \x20       {name}: {{environment: azureml:<registered-name>@latest}}   # from `tug environment create -f env.yml`\n\
         \x20       # or: {name}: {{image: <a local image with python3>}}\n\
         \x20 `tug environment list --curated` shows the map"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> EnvironmentRef {
        EnvironmentRef::parse(text).unwrap()
    }

    fn config(yaml: &str) -> BTreeMap<String, CuratedTarget> {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn both_spellings_of_a_curated_name_are_one_key() {
        let registry = parse("azureml://registries/azureml/environments/sklearn-1.5/labels/latest");
        let workspace = parse("azureml:AzureML-sklearn-1.5@latest");
        assert_eq!(curated_name(&registry).as_deref(), Some("sklearn-1.5"));
        assert_eq!(curated_name(&workspace).as_deref(), Some("sklearn-1.5"));
        let versioned = parse("azureml:azureml-Minimal:3");
        assert_eq!(curated_name(&versioned).as_deref(), Some("minimal"));
        // The workspace's own environments and other registries are not curated.
        assert_eq!(curated_name(&parse("azureml:my-env@latest")), None);
        assert_eq!(
            curated_name(&parse(
                "azureml://registries/contoso/environments/sklearn-1.5/versions/1"
            )),
            None
        );
        assert_eq!(curated_name(&parse("azureml:AzureML-:1")), None);
    }

    #[test]
    fn builtins_cover_the_common_families_and_nothing_else() {
        let all = entries(&BTreeMap::new()).unwrap();
        let image = |name: &str| lookup(&all, &normalize(name)).map(stand_in);
        let sk = StandIn::Image("tug/curated:sklearn".into());
        assert_eq!(image("AzureML-sklearn-1.5"), Some(sk.clone()));
        assert_eq!(image("sklearn-1.0-ubuntu20.04-py38-cpu"), Some(sk));
        assert_eq!(
            image("AzureML-lightgbm-3.3"),
            Some(StandIn::Image("tug/curated:lightgbm".into()))
        );
        let minimal = Some(StandIn::Image("tug/curated:minimal".into()));
        assert_eq!(image("AzureML-Minimal"), minimal);
        assert_eq!(image("minimal-ubuntu22.04-py39-cpu-inference"), minimal);
        assert_eq!(image("AzureML-pytorch-2.0-cuda11.7"), None);
        assert_eq!(image("minimalist"), None, "a family is a whole word");
        assert_eq!(image("sklearn"), None);
    }

    #[test]
    fn workspace_entries_win_and_exact_beats_pattern() {
        let cfg = config(
            "AzureML-sklearn-1.5: {environment: 'azureml:my-sk@latest'}\n\
             pytorch-*: {image: 'torch:local'}\n\
             pytorch-2.0-cuda: {environment: 'azureml:torch:3'}\n",
        );
        let all = entries(&cfg).unwrap();
        let get = |name: &str| lookup(&all, &normalize(name)).map(stand_in);
        assert_eq!(
            get("sklearn-1.5"),
            Some(StandIn::Registered {
                name: "my-sk".into(),
                version: AssetVersion::Latest
            })
        );
        // Other sklearn versions still get the built-in.
        assert_eq!(
            get("sklearn-1.1"),
            Some(StandIn::Image("tug/curated:sklearn".into()))
        );
        assert_eq!(
            get("pytorch-1.13"),
            Some(StandIn::Image("torch:local".into()))
        );
        assert_eq!(
            get("AzureML-pytorch-2.0-cuda"),
            Some(StandIn::Registered {
                name: "torch".into(),
                version: AssetVersion::Version("3".into())
            })
        );
    }

    #[test]
    fn bad_entries_say_which_key() {
        let err = |yaml: &str| entries(&config(yaml)).unwrap_err().to_string();
        assert!(err("x: {}").contains("`curated.x`: give exactly one"));
        assert!(err("x: {image: a, environment: 'azureml:b@latest'}").contains("exactly one"));
        assert!(err("x: {environment: 'b'}").contains("`curated.x.environment: b`"));
        // Mapping a curated name onto another curated name would loop.
        assert!(err("x: {environment: 'azureml:AzureML-y@latest'}").contains("not a registered"));
        assert!(err("'AzureML-*': {image: a}").contains("empty name"));
        assert!(missing_help("pytorch-2.0").contains("pytorch-2.0: {environment: azureml:"));
    }
}
