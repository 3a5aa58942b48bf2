//! The online endpoint file: name, authentication, and how requests are split between its
//! deployments (`traffic`, `mirror_traffic`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::document::{Document, top_keys};
use super::enums::{AuthMode, EndpointComputeType, EndpointIdentityType, PublicNetworkAccess};
use super::error::SpecError;
use super::fields::{fix_scalar_map, normalize_compute, null_default, scalar_map};
use super::index::join;

/// An online endpoint: a stable scoring URL in front of one or more deployments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineEndpointSpec {
    /// `$schema`: informational only.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// 3 to 32 characters, `^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`.
    pub name: String,
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
    /// `key` when absent. `aad_token` is read but not served by tug (the caller refuses it).
    #[serde(default)]
    pub auth_mode: AuthMode,
    /// Deployment name → percent of live requests (each 0..=100, together at most 100).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub traffic: BTreeMap<String, u32>,
    /// At most one deployment → percent (at most 50) of requests copied to it, answers discarded.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub mirror_traffic: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<EndpointIdentity>,
    /// Managed endpoints only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_network_access: Option<PublicNetworkAccess>,
    /// Kubernetes endpoints only: the compute target's bare name (`azureml:k8s` → `k8s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<String>,
    /// Informational (`az ml online-endpoint show` writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `identity:` of an endpoint (how its deployments reach other Azure resources; cloud only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointIdentity {
    #[serde(rename = "type")]
    pub identity_type: EndpointIdentityType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub user_assigned_identities: Vec<UserAssignedIdentity>,
}

/// One entry of `identity.user_assigned_identities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAssignedIdentity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
}

impl OnlineEndpointSpec {
    /// `kubernetes` when the endpoint names a `compute`, else `managed`: the `type` its
    /// deployments must have.
    pub fn compute_type(&self) -> EndpointComputeType {
        if self.compute.is_some() {
            EndpointComputeType::Kubernetes
        } else {
            EndpointComputeType::Managed
        }
    }

    /// The total percent of live traffic (at most 100 once parsed).
    pub fn traffic_total(&self) -> u32 {
        self.traffic.values().sum()
    }
}

/// `^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`, 3 to 32 characters: the name of an online
/// endpoint or deployment.
pub fn valid_online_name(name: &str) -> bool {
    (3..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The nearest valid online name to `name` (`my_endpoint` → `my-endpoint`).
fn suggest_online_name(name: &str, what: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut fixed = mapped
        .trim_start_matches(|c: char| !c.is_ascii_alphabetic())
        .chars()
        .take(32)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string();
    if fixed.is_empty() {
        fixed = format!("my-{what}");
    }
    while fixed.len() < 3 {
        fixed.push('1');
    }
    fixed
}

/// The error for an endpoint or deployment name (`what`: `endpoint`/`deployment`) that
/// breaks the rule, if it does.
pub(crate) fn check_online_name(
    doc: &Document,
    field: &str,
    at_key: bool,
    name: &str,
    what: &str,
) -> Result<(), SpecError> {
    if valid_online_name(name) {
        return Ok(());
    }
    let placeholder = name.starts_with('<') && name.ends_with('>');
    let why = if placeholder {
        "it is a placeholder".to_string()
    } else if !(3..=32).contains(&name.len()) {
        format!("it is {} characters long", name.chars().count())
    } else {
        "it has characters outside the rule".to_string()
    };
    let help = if placeholder {
        let key = field.rsplit('.').next().unwrap_or(field);
        format!("replace it with the {what}'s name, or pass it when creating: `--set {key}=<name>`")
    } else {
        format!("rename it, e.g. to `{}`", suggest_online_name(name, what))
    };
    Err(doc.invalid(
        field,
        at_key,
        format!(
            "`{name}` is not a valid {what} name for `{field}` ({why}): {what} names are 3 to 32 characters, start with a letter, and contain only letters, digits and `-` (not at the end)"
        ),
        help,
    ))
}

const ENDPOINT_EXAMPLE: &str = "      name: my-endpoint\n      auth_mode: key";

/// Checks on an endpoint file's top level before the typed reading.
pub(crate) fn precheck(doc: &Document) -> Result<(), SpecError> {
    let root = doc.root_mapping(ENDPOINT_EXAMPLE)?;
    for key in top_keys(root) {
        let looks_like = match key {
            "endpoint_name" | "code_configuration" | "model" | "environment" | "instance_type" => {
                "an online deployment"
            }
            "command" => "a command job",
            "path" => "a model",
            "image" | "build" => "an environment",
            "defaults" => {
                return Err(doc.unsupported(
                    key,
                    true,
                    "`defaults` at the top level: this looks like a batch endpoint; tug serves online endpoints only".into(),
                    "write an online endpoint (`name`, `auth_mode`, `traffic`), or run the batch scoring as a command job",
                ));
            }
            _ => continue,
        };
        return Err(doc.invalid(
            key,
            true,
            format!(
                "`{key}` at the top level: this looks like {looks_like}, not an online endpoint"
            ),
            format!(
                "read it as {looks_like}; an online endpoint file looks like:\n{ENDPOINT_EXAMPLE}"
            ),
        ));
    }
    Ok(())
}

impl OnlineEndpointSpec {
    /// After the typed reading: YAML 1.1 text of tags, names, traffic rules, kind-specific keys.
    pub(crate) fn finish(&mut self, doc: &Document) -> Result<(), SpecError> {
        fix_scalar_map(doc, "tags", &mut self.tags);
        fix_scalar_map(doc, "properties", &mut self.properties);
        check_online_name(doc, "name", false, &self.name, "endpoint")?;
        if let Some(compute) = &self.compute {
            let name = normalize_compute(compute).map_err(|m| {
                doc.invalid(
                    "compute",
                    false,
                    m.message.replace("{field}", "compute"),
                    "write `compute: azureml:<kubernetes-compute>`, or remove `compute` for a managed endpoint",
                )
            })?;
            self.compute = Some(name);
            if self.public_network_access.is_some() {
                return Err(doc.invalid(
                    "public_network_access",
                    true,
                    "`public_network_access` applies to managed endpoints, and this one is a kubernetes endpoint (it names a `compute`)".into(),
                    "remove `public_network_access`, or remove `compute` for a managed endpoint",
                ));
            }
        }
        self.check_traffic(doc)?;
        self.check_identity(doc)
    }

    fn check_traffic(&self, doc: &Document) -> Result<(), SpecError> {
        for (section, map, max) in [
            ("traffic", &self.traffic, 100),
            ("mirror_traffic", &self.mirror_traffic, 50),
        ] {
            for (name, percent) in map {
                let field = join(section, name);
                check_online_name(doc, &field, true, name, "deployment")?;
                if *percent > max {
                    return Err(doc.invalid(
                        &field,
                        false,
                        format!("`{field}: {percent}` is more than {max} percent"),
                        if section == "traffic" {
                            "give a whole percent from 0 to 100".to_string()
                        } else {
                            "mirror at most 50 percent of the requests".to_string()
                        },
                    ));
                }
            }
        }
        let total = self.traffic_total();
        if total > 100 {
            let parts: Vec<String> = self
                .traffic
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            return Err(doc.invalid(
                "traffic",
                true,
                format!(
                    "the `traffic` percentages add up to {total} ({}); together they may be at most 100",
                    parts.join(" + ")
                ),
                "lower them so that they add up to 100 (every request served) or less",
            ));
        }
        if let Some(second) = self.mirror_traffic.keys().nth(1) {
            return Err(doc.invalid(
                &join("mirror_traffic", second),
                true,
                format!(
                    "`mirror_traffic` names {} deployments; requests can be mirrored to one deployment only",
                    self.mirror_traffic.len()
                ),
                "keep one deployment under `mirror_traffic`",
            ));
        }
        for (name, percent) in &self.mirror_traffic {
            if *percent > 0 && self.traffic.get(name).is_some_and(|p| *p > 0) {
                return Err(doc.invalid(
                    &join("mirror_traffic", name),
                    true,
                    format!(
                        "`{name}` gets both live traffic ({}%) and mirrored traffic ({percent}%); a deployment gets one or the other",
                        self.traffic[name]
                    ),
                    format!("set `traffic.{name}: 0`, or remove it from `mirror_traffic`"),
                ));
            }
        }
        Ok(())
    }

    fn check_identity(&self, doc: &Document) -> Result<(), SpecError> {
        let Some(identity) = &self.identity else {
            return Ok(());
        };
        let users = &identity.user_assigned_identities;
        match identity.identity_type {
            EndpointIdentityType::UserAssigned if users.is_empty() => Err(doc.invalid(
                "identity.type",
                false,
                "`identity.type: user_assigned` needs the identity in `identity.user_assigned_identities`".into(),
                "add `user_assigned_identities:` with one `- resource_id: /subscriptions/.../userAssignedIdentities/<name>`",
            )),
            EndpointIdentityType::UserAssigned if users.len() > 1 => Err(doc.invalid(
                "identity.user_assigned_identities[1]",
                false,
                format!(
                    "`identity.user_assigned_identities` lists {} identities; an endpoint can use one",
                    users.len()
                ),
                "keep one entry",
            )),
            EndpointIdentityType::SystemAssigned | EndpointIdentityType::None
                if !users.is_empty() =>
            {
                Err(doc.invalid(
                    "identity.user_assigned_identities",
                    true,
                    format!(
                        "`identity.user_assigned_identities` only applies to `type: user_assigned`, and this identity is `{}`",
                        identity.identity_type
                    ),
                    "set `type: user_assigned`, or remove `user_assigned_identities`",
                ))
            }
            _ => Ok(()),
        }
    }
}
