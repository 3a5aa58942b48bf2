//! Conda environment files, and the plan for installing one with pip instead of conda.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::error::{Marked, nearest};
use super::fields::null_default;
use super::literal::ScalarString;

/// A conda environment file (`name`, `channels`, `dependencies`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CondaSpec {
    /// Ignored by Azure (the environment gets its own name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub channels: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub dependencies: Vec<CondaDependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub variables: BTreeMap<String, ScalarString>,
}

/// One entry of `dependencies:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CondaDependency {
    /// A conda package spec (`numpy=1.26`, `conda-forge::scikit-learn>=1.3`).
    Package(String),
    /// `- pip: [...]`: pip requirement lines, installed with pip as written.
    Pip(Vec<String>),
}

/// How to get a conda environment's packages with pip alone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PipPlan {
    /// The Python version the file asks for (`3.10` from `python=3.10`, `>=3.9` from
    /// `python>=3.9`), if any.
    pub python: Option<String>,
    /// Requirement lines for `pip install`: conda packages translated, then the `pip:` lists.
    pub pip_requirements: Vec<String>,
    /// Conda packages with no pip equivalent (CUDA toolkits, MKL, compilers...), as written.
    pub conda_only: Vec<String>,
    pub channels: Vec<String>,
    /// Constraints that could not be carried over exactly (the builder may want to warn).
    pub notes: Vec<String>,
}

impl Serialize for CondaDependency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CondaDependency::Package(p) => s.serialize_str(p),
            CondaDependency::Pip(list) => {
                let mut map = BTreeMap::new();
                map.insert("pip", list);
                map.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for CondaDependency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CondaDependency;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a conda package spec like `numpy=1.26`, or `pip: [...]`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CondaDependency, E> {
                check_package_spec(v).map_err(Marked::into_de)?;
                Ok(CondaDependency::Package(v.trim().to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<CondaDependency, E> {
                Err(Marked::invalid(
                    format!("`{{field}}` is the number {v}, not a package spec"),
                    "write the package name with its version, e.g. `python=3.10`",
                )
                .into_de())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CondaDependency, A::Error> {
                let mut pip = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "pip" {
                        let hint = nearest(&key, ["pip"])
                            .map(|s| format!("; did you mean `{s}`?"))
                            .unwrap_or_default();
                        return Err(Marked::invalid(
                            format!("`{key}:` in `{{field}}`: only `pip:` lists can be nested in dependencies{hint}"),
                            "write pip packages as `- pip:` followed by `- package==version` lines",
                        )
                        .at_key(&key)
                        .into_de());
                    }
                    pip = Some(map.next_value::<Option<Vec<String>>>()?.unwrap_or_default());
                }
                pip.map(CondaDependency::Pip).ok_or_else(|| {
                    Marked::invalid(
                        "`{field}` is an empty mapping",
                        "write `- pip:` followed by pip requirement lines",
                    )
                    .into_de()
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Package names: letters, digits, `-`, `_`, `.`.
fn name_len(spec: &str) -> usize {
    spec.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(spec.len())
}

/// Strip an optional `channel::` prefix.
fn without_channel(spec: &str) -> &str {
    spec.rsplit_once("::").map_or(spec, |(_, s)| s).trim()
}

fn check_package_spec(spec: &str) -> Result<(), Marked> {
    let bare = without_channel(spec);
    let n = name_len(bare);
    if n == 0 {
        return Err(Marked::invalid(
            format!("`{spec}` in `{{field}}` has no package name"),
            "write a conda package spec: `name`, `name=1.2`, `name>=1.2,<2` or `channel::name=1.2`",
        ));
    }
    let rest = bare[n..].trim_start();
    let ok = rest.is_empty()
        || rest.starts_with(['=', '<', '>', '!', '~', '['])
        || rest.starts_with(|c: char| c.is_ascii_digit() || c == '*');
    if !ok {
        return Err(Marked::invalid(
            format!("`{spec}` in `{{field}}` is not a conda package spec"),
            "write `name`, `name=1.2`, `name>=1.2,<2` or `channel::name=1.2` (pip-style `name==1.2` goes under `- pip:`)",
        ));
    }
    Ok(())
}

/// Conda names whose pip package is called differently.
const RENAMED: &[(&str, &str)] = &[
    ("pytorch", "torch"),
    ("pytorch-cpu", "torch"),
    ("py-xgboost", "xgboost"),
    ("py-xgboost-cpu", "xgboost"),
    ("py-lightgbm", "lightgbm"),
    ("py-catboost", "catboost"),
    ("matplotlib-base", "matplotlib"),
    ("py-opencv", "opencv-python"),
    ("opencv", "opencv-python"),
    ("msgpack-python", "msgpack"),
    ("pytables", "tables"),
    ("python-graphviz", "graphviz"),
    ("tensorflow-base", "tensorflow"),
];

/// Conda packages with no pip counterpart: system libraries, toolchains, CUDA, BLAS.
const CONDA_ONLY: &[&str] = &[
    "cudatoolkit",
    "cudatoolkit-dev",
    "cudnn",
    "cuda",
    "cuda-toolkit",
    "cuda-nvcc",
    "cuda-runtime",
    "cuda-version",
    "pytorch-cuda",
    "cpuonly",
    "nccl",
    "mkl",
    "mkl-include",
    "mkl-service",
    "mkl_fft",
    "mkl_random",
    "nomkl",
    "blas",
    "libblas",
    "libcblas",
    "liblapack",
    "openblas",
    "intel-openmp",
    "llvm-openmp",
    "libgcc",
    "libgcc-ng",
    "libstdcxx-ng",
    "libgfortran-ng",
    "openmpi",
    "mpich",
    "ca-certificates",
    "openssl",
    "libffi",
    "zlib",
    "xz",
    "gcc",
    "gxx",
    "gcc_linux-64",
    "gxx_linux-64",
    "gfortran",
    "make",
    "git",
    "ffmpeg",
    "graphviz",
    "nodejs",
    "r-base",
    "cmake",
    "sqlite",
    "tk",
    "readline",
    "ncurses",
    "bzip2",
    "libuuid",
    "ld_impl_linux-64",
];

/// A conda version constraint in pip syntax, or `Err(note)` when it has none.
fn pip_version(version: &str) -> Result<String, String> {
    let version = version.trim();
    if version.is_empty() {
        return Ok(String::new());
    }
    if version.contains('|') {
        return Err(format!(
            "`{version}` (an OR of versions) has no pip form; installing without a version"
        ));
    }
    if let Some(exact) = version.strip_prefix("==") {
        let exact = exact.split('=').next().unwrap_or(exact).trim();
        return Ok(format!("=={exact}"));
    }
    if version.starts_with(['<', '>', '!', '~']) {
        return Ok(version
            .split_whitespace()
            .next()
            .unwrap_or(version)
            .to_string());
    }
    // Conda's fuzzy forms: `=1.2`, `=1.2=build`, ` 1.2`, ` 1.2.*`, ` 1.2 build` → 1.2.*
    let fuzzy = version
        .trim_start_matches('=')
        .split(['=', ' '])
        .next()
        .unwrap_or_default();
    let base = fuzzy.trim_end_matches('*').trim_end_matches('.');
    if base.is_empty() {
        return Ok(String::new());
    }
    if base.contains(['<', '>', ',', '!']) {
        return Err(format!(
            "`{version}` mixes conda version forms; installing without a version"
        ));
    }
    Ok(format!("=={base}.*"))
}

impl CondaSpec {
    /// Translate to a pip install plan (pure; see [`PipPlan`]).
    pub fn pip_plan(&self) -> PipPlan {
        let mut plan = PipPlan {
            channels: self.channels.clone(),
            ..PipPlan::default()
        };
        let mut from_pip = Vec::new();
        for dep in &self.dependencies {
            let spec = match dep {
                CondaDependency::Pip(list) => {
                    from_pip.extend(list.iter().cloned());
                    continue;
                }
                CondaDependency::Package(spec) => spec,
            };
            let mut bare = without_channel(spec);
            if let Some(i) = bare.find('[') {
                plan.notes
                    .push(format!("`{spec}`: bracket options dropped"));
                bare = &bare[..i];
            }
            let n = name_len(bare);
            let name = bare[..n].to_ascii_lowercase();
            let version = &bare[n..];
            if name == "python" {
                let v = version.trim();
                let v = match v.strip_prefix("==").or_else(|| v.strip_prefix('=')) {
                    // `=3.10=build`: drop the build string.
                    Some(exact) => exact.split('=').next().unwrap_or(exact),
                    None => v,
                };
                plan.python = (!v.is_empty()).then(|| v.to_string());
                continue;
            }
            if name == "pip" {
                continue;
            }
            if CONDA_ONLY.contains(&name.as_str())
                || name.starts_with("r-")
                || name.starts_with('_')
            {
                plan.conda_only.push(spec.clone());
                continue;
            }
            let pip_name = RENAMED
                .iter()
                .find(|(c, _)| *c == name)
                .map_or(name.as_str(), |(_, p)| p);
            let constraint = pip_version(version).unwrap_or_else(|note| {
                plan.notes.push(format!("`{spec}`: {note}"));
                String::new()
            });
            plan.pip_requirements
                .push(format!("{pip_name}{constraint}"));
        }
        plan.pip_requirements.extend(from_pip);
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> PipPlan {
        serde_yaml::from_str::<CondaSpec>(yaml).unwrap().pip_plan()
    }

    #[test]
    fn maps_conda_specs_to_pip() {
        let p = plan(
            "name: train\nchannels: [conda-forge]\ndependencies:\n- python=3.10\n- pip\n- numpy=1.26\n- scipy>=1.2\n- scikit-learn\n- pytorch::pytorch=2.1\n- py-xgboost\n- matplotlib-base 3.8.*\n- pandas==2.1.4=py310_0\n- cudatoolkit=11.8\n- mkl\n- pip:\n  - mlflow==2.9.2\n  - azureml-mlflow\n",
        );
        assert_eq!(p.python.as_deref(), Some("3.10"));
        assert_eq!(
            p.pip_requirements,
            [
                "numpy==1.26.*",
                "scipy>=1.2",
                "scikit-learn",
                "torch==2.1.*",
                "xgboost",
                "matplotlib==3.8.*",
                "pandas==2.1.4",
                "mlflow==2.9.2",
                "azureml-mlflow"
            ]
        );
        assert_eq!(p.conda_only, ["cudatoolkit=11.8", "mkl"]);
        assert_eq!(p.channels, ["conda-forge"]);
        assert!(p.notes.is_empty());
    }

    #[test]
    fn python_constraints_and_notes() {
        assert_eq!(
            plan("dependencies: ['python>=3.9,<3.12']")
                .python
                .as_deref(),
            Some(">=3.9,<3.12")
        );
        assert_eq!(plan("dependencies: [python]").python, None);
        let p = plan("dependencies: ['numpy 1.2|1.3']");
        assert_eq!(p.pip_requirements, ["numpy"]);
        assert_eq!(p.notes.len(), 1);
    }

    #[test]
    fn rejects_bad_dependency_entries() {
        assert!(serde_yaml::from_str::<CondaSpec>("dependencies: [{pipp: [x]}]").is_err());
        assert!(serde_yaml::from_str::<CondaSpec>("dependencies: ['=1.2']").is_err());
        assert!(serde_yaml::from_str::<CondaSpec>("dependencies: ['numpy@1.2']").is_err());
        assert!(serde_yaml::from_str::<CondaSpec>("chanels: [x]").is_err());
    }
}
