//! The settings blocks of an online deployment: probes, request handling, scaling, Kubernetes
//! resources and data collection.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Serialize};

use super::document::Document;
use super::enums::{EndpointComputeType, RollingRate, ScaleType};
use super::error::{Marked, SpecError};
use super::fields::null_default;
use super::index::join;

/// `liveness_probe` / `readiness_probe`: how the container's health is checked (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSettings {
    /// Seconds after the container starts before the first probe (10).
    #[serde(default = "ten")]
    pub initial_delay: u32,
    /// Seconds between probes (10).
    #[serde(default = "ten")]
    pub period: u32,
    /// Seconds a probe may take (2).
    #[serde(default = "two")]
    pub timeout: u32,
    /// Consecutive successes that make a failed container healthy again (1).
    #[serde(default = "one")]
    pub success_threshold: u32,
    /// Consecutive failures that make the container unhealthy (30).
    #[serde(default = "thirty")]
    pub failure_threshold: u32,
}

fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn ten() -> u32 {
    10
}
fn thirty() -> u32 {
    30
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            initial_delay: 10,
            period: 10,
            timeout: 2,
            success_threshold: 1,
            failure_threshold: 30,
        }
    }
}

/// `request_settings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSettings {
    /// Milliseconds a scoring request may take (5000; at most 180000 managed, 300000 kubernetes).
    #[serde(default = "request_timeout")]
    pub request_timeout_ms: u32,
    /// Requests one instance handles at once (1); more also needs `WORKER_COUNT`.
    #[serde(default = "one")]
    pub max_concurrent_requests_per_instance: u32,
    /// Milliseconds a request may wait in the queue (500; deprecated by Azure).
    #[serde(default = "queue_wait")]
    pub max_queue_wait_ms: u32,
}

fn request_timeout() -> u32 {
    5000
}
fn queue_wait() -> u32 {
    500
}

/// The longest `request_timeout_ms` of a deployment of this type.
pub fn max_request_timeout_ms(kind: EndpointComputeType) -> u32 {
    match kind {
        EndpointComputeType::Managed => 180_000,
        EndpointComputeType::Kubernetes => 300_000,
    }
}

impl Default for RequestSettings {
    fn default() -> Self {
        RequestSettings {
            request_timeout_ms: 5000,
            max_concurrent_requests_per_instance: 1,
            max_queue_wait_ms: 500,
        }
    }
}

/// `scale_settings`: a fixed `instance_count` (`default`), or autoscaling (kubernetes only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScaleSettings {
    #[default]
    Default,
    TargetUtilization {
        min_instances: u32,
        max_instances: u32,
        target_utilization_percentage: u32,
        /// Seconds between utilization checks.
        polling_interval: u32,
    },
}

impl<'de> Deserialize<'de> for ScaleSettings {
    /// Through a visitor, so that errors of the checks below carry the field's path.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScaleSettings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping with `type: default` or `type: target_utilization`")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ScaleSettings, A::Error> {
                let raw = RawScaleSettings::deserialize(MapAccessDeserializer::new(map))?;
                ScaleSettings::try_from(raw).map_err(Marked::into_de)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScaleSettings {
    #[serde(rename = "type", default)]
    scale_type: Option<ScaleType>,
    #[serde(default)]
    min_instances: Option<u32>,
    #[serde(default)]
    max_instances: Option<u32>,
    #[serde(default)]
    target_utilization_percentage: Option<u32>,
    #[serde(default)]
    polling_interval: Option<u32>,
}

impl TryFrom<RawScaleSettings> for ScaleSettings {
    type Error = Marked;

    fn try_from(raw: RawScaleSettings) -> Result<Self, Marked> {
        let Some(scale_type) = raw.scale_type else {
            return Err(Marked::missing(
                "type",
                "add `type: default` (a fixed `instance_count`), or `type: target_utilization` with `min_instances`/`max_instances` on kubernetes",
            ));
        };
        let autoscale = [
            ("min_instances", raw.min_instances),
            ("max_instances", raw.max_instances),
            (
                "target_utilization_percentage",
                raw.target_utilization_percentage,
            ),
            ("polling_interval", raw.polling_interval),
        ];
        if scale_type == ScaleType::Default {
            if let Some((key, _)) = autoscale.iter().find(|(_, v)| v.is_some()) {
                return Err(Marked::invalid(
                    "`{field}` only applies to `type: target_utilization`, and these scale settings are `type: default`",
                    format!("remove `{key}` (the deployment runs `instance_count` instances), or set `type: target_utilization`"),
                )
                .at_key(key));
            }
            return Ok(ScaleSettings::Default);
        }
        let min_instances = raw.min_instances.unwrap_or(1);
        let max_instances = raw.max_instances.unwrap_or(1);
        let target = raw.target_utilization_percentage.unwrap_or(70);
        let polling_interval = raw.polling_interval.unwrap_or(1);
        if max_instances < min_instances.max(1) {
            return Err(Marked::invalid(
                format!(
                    "`{{field}}` ({max_instances}) is below `min_instances` ({min_instances}), or 0"
                ),
                "make `max_instances` at least `min_instances` and at least 1",
            )
            .at("max_instances"));
        }
        if !(1..=100).contains(&target) {
            return Err(Marked::invalid(
                format!("`{{field}}: {target}` is not a percentage from 1 to 100"),
                "give the CPU utilization to aim for, e.g. `target_utilization_percentage: 70`",
            )
            .at("target_utilization_percentage"));
        }
        if polling_interval == 0 {
            return Err(Marked::invalid(
                "`{field}` is 0; utilization is checked every `polling_interval` seconds",
                "give at least 1 second, e.g. `polling_interval: 10`",
            )
            .at("polling_interval"));
        }
        Ok(ScaleSettings::TargetUtilization {
            min_instances,
            max_instances,
            target_utilization_percentage: target,
            polling_interval,
        })
    }
}

/// `resources` of a kubernetes deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRequirements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceSettings>,
}

/// `resources.requests` / `resources.limits`: Kubernetes quantities, as text (`"0.5"`, `"500m"`,
/// `"2Gi"`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// `nvidia.com/gpu` (Azure also accepts `gpu`).
    #[serde(
        rename = "nvidia.com/gpu",
        alias = "gpu",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub gpu: Option<String>,
}

/// A Kubernetes quantity: a decimal number and an optional unit suffix.
fn valid_quantity(text: &str) -> bool {
    const UNITS: &[&str] = &[
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E",
    ];
    let number = UNITS
        .iter()
        .find_map(|u| text.strip_suffix(u))
        .unwrap_or(text);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    !(whole.is_empty() && fraction.is_empty())
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.chars().all(|c| c.is_ascii_digit())
}

impl ResourceRequirements {
    pub(crate) fn check(&self, doc: &Document, prefix: &str) -> Result<(), SpecError> {
        for (section, settings) in [("requests", &self.requests), ("limits", &self.limits)] {
            let Some(s) = settings else { continue };
            let values = [
                ("cpu", &s.cpu, "`cpu: \"0.5\"` or `cpu: 500m`"),
                ("memory", &s.memory, "`memory: 512Mi` or `memory: 2Gi`"),
                ("nvidia.com/gpu", &s.gpu, "`nvidia.com/gpu: \"1\"`"),
            ];
            for (key, value, example) in values {
                let Some(value) = value else { continue };
                let gpu_ok = key != "nvidia.com/gpu" || value.chars().all(|c| c.is_ascii_digit());
                if !valid_quantity(value) || !gpu_ok {
                    let field = join(&join(prefix, section), key);
                    return Err(doc.invalid(
                        &field,
                        false,
                        format!("`{field}: {value}` is not a Kubernetes quantity"),
                        format!("write a number with an optional unit, as text, e.g. {example}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `data_collector` (cloud only: collected payloads go to Azure storage). Collections are
/// kept as written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCollector {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub collections: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_rate: Option<RollingRate>,
    /// 0.0 to 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_logging: Option<serde_json::Value>,
}

/// Check one probe's values (`field` is `liveness_probe` or `readiness_probe`).
pub(crate) fn check_probe(
    doc: &Document,
    field: &str,
    probe: &ProbeSettings,
) -> Result<(), SpecError> {
    let values = [
        (
            "period",
            probe.period,
            "how often to probe, e.g. `period: 10`",
        ),
        (
            "timeout",
            probe.timeout,
            "how long a probe may take, e.g. `timeout: 2`",
        ),
        (
            "success_threshold",
            probe.success_threshold,
            "`success_threshold: 1`",
        ),
        (
            "failure_threshold",
            probe.failure_threshold,
            "how many failed probes in a row mark the container unhealthy, e.g. `failure_threshold: 30`",
        ),
    ];
    for (key, value, example) in values {
        if value == 0 {
            let f = join(field, key);
            return Err(doc.invalid(
                &f,
                false,
                format!("`{f}` is 0; it must be at least 1"),
                format!("give {example}, or remove the line for the default"),
            ));
        }
    }
    Ok(())
}

/// Check `request_settings` against the limits of a deployment of type `kind`.
pub(crate) fn check_request_settings(
    doc: &Document,
    settings: &RequestSettings,
    kind: EndpointComputeType,
) -> Result<(), SpecError> {
    let max = max_request_timeout_ms(kind);
    let timeout = settings.request_timeout_ms;
    if timeout == 0 || timeout > max {
        return Err(doc.invalid(
            "request_settings.request_timeout_ms",
            false,
            format!(
                "`request_settings.request_timeout_ms: {timeout}` is outside 1..={max}, the range for {kind} deployments"
            ),
            format!("give the time-out in milliseconds, at most {max} ({} s)", max / 1000),
        ));
    }
    if settings.max_concurrent_requests_per_instance == 0 {
        return Err(doc.invalid(
            "request_settings.max_concurrent_requests_per_instance",
            false,
            "`request_settings.max_concurrent_requests_per_instance` is 0; an instance must take at least one request".into(),
            "set it to 1 (the default), or more together with the `WORKER_COUNT` environment variable",
        ));
    }
    Ok(())
}

/// Check `data_collector.sampling_rate`.
pub(crate) fn check_data_collector(doc: &Document, dc: &DataCollector) -> Result<(), SpecError> {
    match dc.sampling_rate {
        Some(rate) if !(0.0..=1.0).contains(&rate) => Err(doc.invalid(
            "data_collector.sampling_rate",
            false,
            format!("`data_collector.sampling_rate: {rate}` is outside 0.0 to 1.0"),
            "give the share of requests to collect, e.g. `sampling_rate: 0.5` for half",
        )),
        _ => Ok(()),
    }
}
