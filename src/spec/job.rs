//! The command job file: its types, and the checks that need the whole file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::document::{Document, top_keys};
use super::enums::{DistributionType, IdentityType, JobKind, JobTier, Priority, ServiceType};
use super::environment::EnvironmentRef;
use super::error::{SpecError, backticked, nearest};
use super::fields::{
    SourcePath, compute, default_compute, fix_scalar_map, null_default, scalar_map,
};
use super::io::{Input, Output, finish_inputs, finish_outputs};

/// A command job (`type: command`, or no `type`): one command run in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandJob {
    /// `$schema`: informational only.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: JobKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(
        default,
        deserialize_with = "scalar_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tags: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "scalar_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub properties: BTreeMap<String, String>,
    /// The shell command; `${{inputs.x}}`/`${{outputs.y}}` are checked against the declarations.
    pub command: String,
    /// The code snapshot (working directory); a local path is joined to the YAML file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<SourcePath>,
    pub environment: EnvironmentRef,
    /// Values are Python `str()` of the YAML 1.1 scalar (`yes` → `True`).
    #[serde(
        default,
        deserialize_with = "scalar_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub environment_variables: BTreeMap<String, String>,
    /// The target's bare name (`azureml:gpu` → `gpu`); `local` when absent.
    #[serde(default = "default_compute", deserialize_with = "compute")]
    pub compute: String,
    #[serde(default, deserialize_with = "null_default")]
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub inputs: BTreeMap<String, Input>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub outputs: BTreeMap<String, Output>,
    /// Interactive services (cloud only; kept so Azure files load).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub services: BTreeMap<String, Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_settings: Option<QueueSettings>,
}

/// `resources:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default = "one")]
    pub instance_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Docker `--shm-size` (`2g`, `512m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_args: Option<DockerArgs>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub locations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instance_count: Option<u32>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub properties: BTreeMap<String, serde_json::Value>,
}

fn one() -> u32 {
    1
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            instance_count: 1,
            instance_type: None,
            shm_size: None,
            docker_args: None,
            locations: Vec::new(),
            max_instance_count: None,
            properties: BTreeMap::new(),
        }
    }
}

/// `resources.docker_args`: one string, or a list of arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DockerArgs {
    Line(String),
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for DockerArgs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DockerArgs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string of docker arguments or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DockerArgs, E> {
                Ok(DockerArgs::Line(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DockerArgs, A::Error> {
                let mut out = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    out.push(arg);
                }
                Ok(DockerArgs::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `distribution:` (multi-process / multi-node training).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distribution {
    #[serde(rename = "type")]
    pub kind: DistributionType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_count_per_instance: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_server_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_dashboard: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_node_additional_args: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_node_additional_args: Option<String>,
}

/// `limits:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Seconds; the job is canceled when it runs longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// One entry of `services:` (interactive access; cloud only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ServiceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_keys: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub properties: BTreeMap<String, serde_json::Value>,
}

/// `identity:` (how the job reaches data; cloud only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    #[serde(rename = "type")]
    pub kind: IdentityType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msi_resource_id: Option<String>,
}

/// `queue_settings:` (cloud only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_tier: Option<JobTier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
}

/// Azure ML job types that tug does not read.
const OTHER_JOB_TYPES: &[&str] = &["parallel", "spark", "automl", "import", "data_transfer"];

pub(crate) const JOB_EXAMPLE: &str =
    "      command: echo hello\n      environment:\n        image: python:3.11-slim";

/// The job type a file declares (`type:`; absent means `command`), or the error for a type
/// tug does not read.
pub(crate) fn job_kind(doc: &Document) -> Result<JobKind, SpecError> {
    let root = doc.root_mapping(JOB_EXAMPLE)?;
    let Some(kind) = root.get("type").and_then(|v| v.as_str()) else {
        return Ok(JobKind::Command);
    };
    if let Some(known) = JobKind::parse(kind) {
        return Ok(known);
    }
    let lower = kind.to_ascii_lowercase();
    if OTHER_JOB_TYPES.contains(&lower.as_str()) {
        return Err(doc.unsupported(
            "type",
            false,
            format!("`type: {kind}` jobs are not supported by tug; it runs command and sweep jobs"),
            "write the work as a command job (`command:` + `environment:`)",
        ));
    }
    let mut all = JobKind::ALL.to_vec();
    all.extend_from_slice(OTHER_JOB_TYPES);
    let hint = nearest(&lower, all.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    Err(doc.invalid(
        "type",
        false,
        format!("unknown job type `{kind}`{hint}"),
        format!(
            "use `type: command` (or leave `type` out), `type: sweep` or `type: pipeline`; Azure ML job types are {}",
            backticked(&all)
        ),
    ))
}

/// Checks on the raw document before the typed reading: what kind of file this is.
pub(crate) fn precheck(doc: &Document) -> Result<(), SpecError> {
    if job_kind(doc)? == JobKind::Pipeline {
        return Err(doc.unsupported(
            "type",
            false,
            "`type: pipeline`: this is a pipeline job, and this reader only reads command jobs"
                .into(),
            "`spec::parse_pipeline_job` reads pipeline jobs",
        ));
    }
    if job_kind(doc)? == JobKind::Sweep {
        return Err(doc.unsupported(
            "type",
            false,
            "`type: sweep`: this is a sweep job, and this reader only reads command jobs".into(),
            "`tug job create -f <file>` reads sweep jobs (in code: `spec::job_file_kind` tells the type, `spec::parse_sweep_job` reads a sweep)",
        ));
    }
    let root = doc.root_mapping(JOB_EXAMPLE)?;
    let keys: Vec<&str> = top_keys(root).collect();
    if !keys.contains(&"command") && (keys.contains(&"image") || keys.contains(&"build")) {
        let key = if keys.contains(&"image") {
            "image"
        } else {
            "build"
        };
        return Err(doc.invalid(
            key,
            true,
            format!(
                "`{key}` at the top level: this looks like an environment file, not a command job"
            ),
            format!(
                "read it as an environment, or put it under `environment:` in a job:\n{JOB_EXAMPLE}"
            ),
        ));
    }
    Ok(())
}

/// A value that mentions `secrets.` inside `${{...}}` must be exactly one reference, so the
/// secret is never spliced into other text (which tug could not mask reliably).
pub(crate) fn check_secret_references(
    doc: &Document,
    field: &str,
    env: &BTreeMap<String, String>,
) -> Result<(), SpecError> {
    for (name, value) in env {
        if crate::secrets::mentions_secret(value) && crate::secrets::reference(value).is_none() {
            return Err(doc.invalid(
                &format!("{field}.{name}"),
                false,
                format!("`{value}` is not a secret reference tug can use"),
                format!(
                    "make the whole value one reference, `{name}: ${{{{secrets.NAME}}}}` (NAME: letters, digits, `_`), and set it with `tug secret set NAME`"
                ),
            ));
        }
    }
    Ok(())
}

impl CommandJob {
    /// After the typed reading: YAML 1.1 re-reading of literals, local paths, and the checks
    /// that involve several fields.
    pub(crate) fn finish(&mut self, doc: &Document) -> Result<(), SpecError> {
        fix_scalar_map(doc, "tags", &mut self.tags);
        fix_scalar_map(doc, "properties", &mut self.properties);
        fix_scalar_map(
            doc,
            "environment_variables",
            &mut self.environment_variables,
        );
        check_secret_references(doc, "environment_variables", &self.environment_variables)?;
        if self.command.trim().is_empty() {
            return Err(doc.invalid(
                "command",
                false,
                "`command` is empty".into(),
                "give the shell command to run, e.g. `command: python train.py`",
            ));
        }
        self.check_resources(doc)?;
        self.check_distribution(doc)?;
        finish_inputs(doc, &mut self.inputs)?;
        finish_outputs(doc, &self.outputs)?;
        if let EnvironmentRef::Inline(env) = &mut self.environment {
            env.finish(doc, "environment");
        }
        if let Some(code) = &mut self.code {
            code.resolve(doc.path.parent().unwrap_or(Path::new("")));
        }
        super::expr::validate_command(
            doc,
            "command",
            &self.command,
            &self.inputs,
            &self.outputs,
            None,
        )
    }

    pub(super) fn check_resources(&self, doc: &Document) -> Result<(), SpecError> {
        let r = &self.resources;
        if r.instance_count == 0 {
            return Err(doc.invalid(
                "resources.instance_count",
                false,
                "`resources.instance_count` is 0; a job needs at least one instance".into(),
                "set `instance_count: 1` (or leave it out; 1 is the default)",
            ));
        }
        if let Some(max) = r.max_instance_count
            && max < r.instance_count
        {
            return Err(doc.invalid(
                "resources.max_instance_count",
                false,
                format!(
                    "`resources.max_instance_count` ({max}) is below `instance_count` ({})",
                    r.instance_count
                ),
                "raise `max_instance_count` or remove it",
            ));
        }
        if let Some(shm) = &r.shm_size {
            let digits = shm.trim_end_matches(['b', 'k', 'm', 'g', 'B', 'K', 'M', 'G']);
            let unit_len = shm.len() - digits.len();
            if digits.is_empty() || unit_len > 1 || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(doc.invalid(
                    "resources.shm_size",
                    false,
                    format!("`resources.shm_size: {shm}` is not a size"),
                    "write a number with an optional unit b, k, m or g, e.g. `shm_size: 2g`",
                ));
            }
        }
        Ok(())
    }

    pub(super) fn check_distribution(&self, doc: &Document) -> Result<(), SpecError> {
        let Some(d) = &self.distribution else {
            return Ok(());
        };
        let set: [(&str, bool, &[DistributionType]); 8] = [
            (
                "process_count_per_instance",
                d.process_count_per_instance.is_some(),
                &[DistributionType::Mpi, DistributionType::Pytorch],
            ),
            (
                "worker_count",
                d.worker_count.is_some(),
                &[DistributionType::Tensorflow],
            ),
            (
                "parameter_server_count",
                d.parameter_server_count.is_some(),
                &[DistributionType::Tensorflow],
            ),
            ("port", d.port.is_some(), &[DistributionType::Ray]),
            ("address", d.address.is_some(), &[DistributionType::Ray]),
            (
                "include_dashboard",
                d.include_dashboard.is_some(),
                &[DistributionType::Ray],
            ),
            (
                "dashboard_port",
                d.dashboard_port.is_some(),
                &[DistributionType::Ray],
            ),
            (
                "head_node_additional_args",
                d.head_node_additional_args.is_some(),
                &[DistributionType::Ray],
            ),
        ];
        let extra = [(
            "worker_node_additional_args",
            d.worker_node_additional_args.is_some(),
            &[DistributionType::Ray][..],
        )];
        for (key, present, kinds) in set.iter().chain(extra.iter()) {
            if *present && !kinds.contains(&d.kind) {
                let owners: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                return Err(doc.invalid(
                    &format!("distribution.{key}"),
                    true,
                    format!(
                        "`distribution.{key}` belongs to {} distribution, but this one is `{}`",
                        backticked(&owners),
                        d.kind
                    ),
                    format!("remove `{key}`, or change `type`"),
                ));
            }
        }
        Ok(())
    }
}
