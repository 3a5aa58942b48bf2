//! Azure ML CLI v2 file formats (command job, environment, conda file): typed, validated, located errors.
//!
//! Pure code: callers read files and pass `(path, text)`; `path` is used for messages and to
//! join relative paths (`code:`, data `path:`, `conda_file:`, `build.path`) to the YAML file's
//! directory, never opened.
//!
//! Reading a file goes: YAML text → `serde_yaml::Value` (syntax and duplicate-key errors) →
//! `--set` overrides applied → typed reading with `deny_unknown_fields` (serde errors turned
//! into [`SpecError`]s with position, field path, did-you-mean and a fix) → a finishing pass
//! that re-reads literals with Azure's YAML 1.1 rules (see `literal.rs`), joins paths and
//! checks what involves several fields (command expressions against declared inputs...).
//! Positions for errors found after deserialization come from a small source index
//! (`index.rs`) that maps dotted field paths to lines and columns.

mod conda;
mod diagnose;
mod document;
mod enums;
mod environment;
mod error;
mod expr;
mod fields;
mod index;
mod io;
mod job;
mod literal;
mod overrides;
mod scan;

#[cfg(test)]
mod tests_corpus;
#[cfg(test)]
mod tests_parse;

use std::path::Path;

pub use conda::{CondaDependency, CondaSpec, PipPlan};
pub use enums::{
    DistributionType, IdentityType, InputMode, InputType, JobKind, JobTier, OsType, OutputMode,
    Priority, ServiceType,
};
pub use environment::{
    AssetVersion, BuildContext, CondaFile, EnvironmentRef, EnvironmentSource, EnvironmentSpec,
    InferenceConfig, Route,
};
pub use error::{Origin, SpecError, edit_distance, levenshtein, nearest};
pub use expr::render_command;
pub use fields::SourcePath;
pub use io::{DataInput, Input, LiteralInput, Output, valid_io_name};
pub use job::{
    CommandJob, Distribution, DockerArgs, Identity, Limits, QueueSettings, Resources, Service,
};
pub use literal::{Literal, ScalarString, python_float_repr, resolve_plain};
pub use overrides::apply_overrides;

use document::Document;

/// Read a command job file.
///
/// `path` names the file in errors and is the base for relative paths; `text` is its content;
/// `overrides` are `--set key=value` pairs (`("inputs.lr", "0.1")`) applied before validation.
/// A `type` other than `command` is an error (sweep and pipeline jobs are not read here).
pub fn parse_command_job(
    path: &Path,
    text: &str,
    overrides: &[(&str, &str)],
) -> Result<CommandJob, SpecError> {
    let doc = Document::load(path, text, overrides, "command job")?;
    job::precheck(&doc)?;
    let mut job: CommandJob = doc.deserialize()?;
    job.finish(&doc)?;
    Ok(job)
}

/// Read an environment file (`image:` or `build:`, optional `conda_file:`).
///
/// A file with top-level `channels:`/`dependencies:` is a conda file and is rejected with a
/// hint to reference it through `conda_file:`.
pub fn parse_environment(
    path: &Path,
    text: &str,
    overrides: &[(&str, &str)],
) -> Result<EnvironmentSpec, SpecError> {
    let doc = Document::load(path, text, overrides, "environment")?;
    environment::precheck(&doc)?;
    let mut env: EnvironmentSpec = doc.deserialize()?;
    env.finish(&doc, "");
    Ok(env)
}

/// Read a conda environment file (`channels`, `dependencies`).
pub fn parse_conda(path: &Path, text: &str) -> Result<CondaSpec, SpecError> {
    let doc = Document::load(path, text, &[], "conda file")?;
    doc.root_mapping("      channels: [conda-forge]\n      dependencies:\n      - python=3.11\n      - pip:\n        - numpy")?;
    doc.deserialize()
}

/// Read a conda file and plan installing it with pip: see [`PipPlan`] and [`CondaSpec::pip_plan`].
pub fn conda_pip_plan(path: &Path, text: &str) -> Result<PipPlan, SpecError> {
    parse_conda(path, text).map(|spec| spec.pip_plan())
}
