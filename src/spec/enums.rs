//! The schema's enumerations, read case-insensitively (`Maximize`, `RO_MOUNT`) like Azure does.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::error::{Marked, backticked, nearest};

/// Parse `text` as one of `allowed` (case-insensitively), or build the error that names the
/// allowed values and the nearest one.
pub(crate) fn parse_choice(
    what: &str,
    text: &str,
    allowed: &[&'static str],
) -> Result<usize, Marked> {
    if let Some(i) = allowed.iter().position(|a| a.eq_ignore_ascii_case(text)) {
        return Ok(i);
    }
    let suggestion = nearest(text, allowed.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    Err(Marked::invalid(
        format!("unknown {what} `{text}` for `{{field}}`{suggestion}"),
        format!("use one of {} (case does not matter)", backticked(allowed)),
    ))
}

macro_rules! choice_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, spelled as in the schema.
            pub const ALL: &'static [&'static str] = &[$($text),+];
            const VARIANTS: &'static [$name] = &[$($name::$variant),+];

            /// The schema spelling (`ro_mount`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            /// Parse case-insensitively.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL
                    .iter()
                    .position(|a| a.eq_ignore_ascii_case(text))
                    .map(|i| Self::VARIANTS[i])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "one of {}", super::error::backticked($name::ALL))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        parse_choice($what, v, $name::ALL)
                            .map(|i| $name::VARIANTS[i])
                            .map_err(Marked::into_de)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

choice_enum! {
    /// `type:` of a job file: the job types tug reads (see [`super::job_file_kind`]).
    #[derive(Default)]
    pub enum JobKind ("job type") {
        #[default]
        Command = "command",
        Sweep = "sweep",
        Pipeline = "pipeline",
    }
}

choice_enum! {
    /// `type:` of an input (data types and literal types) or output (data types only).
    pub enum InputType ("input type") {
        UriFile = "uri_file",
        UriFolder = "uri_folder",
        Mltable = "mltable",
        CustomModel = "custom_model",
        MlflowModel = "mlflow_model",
        TritonModel = "triton_model",
        String = "string",
        Integer = "integer",
        Number = "number",
        Boolean = "boolean",
    }
}

impl InputType {
    /// `string | integer | number | boolean`: a value rather than data.
    pub fn is_literal(self) -> bool {
        matches!(
            self,
            InputType::String | InputType::Integer | InputType::Number | InputType::Boolean
        )
    }
}

choice_enum! {
    /// How a data input reaches the container.
    pub enum InputMode ("input mode") {
        RoMount = "ro_mount",
        Download = "download",
        Direct = "direct",
        EvalMount = "eval_mount",
        EvalDownload = "eval_download",
    }
}

choice_enum! {
    /// How an output leaves the container.
    pub enum OutputMode ("output mode") {
        RwMount = "rw_mount",
        Upload = "upload",
        Mount = "mount",
        Direct = "direct",
    }
}

choice_enum! {
    /// `os_type:` of an environment.
    pub enum OsType ("os type") {
        Linux = "linux",
        Windows = "windows",
    }
}

choice_enum! {
    /// `distribution.type`.
    pub enum DistributionType ("distribution type") {
        Mpi = "mpi",
        Pytorch = "pytorch",
        Tensorflow = "tensorflow",
        Ray = "ray",
    }
}

choice_enum! {
    /// `services.<name>.type`.
    pub enum ServiceType ("service type") {
        Ssh = "ssh",
        TensorBoard = "tensor_board",
        VsCode = "vs_code",
        JupyterLab = "jupyter_lab",
    }
}

choice_enum! {
    /// `identity.type`.
    pub enum IdentityType ("identity type") {
        UserIdentity = "user_identity",
        Managed = "managed",
        ManagedIdentity = "managed_identity",
        AmlToken = "aml_token",
    }
}

choice_enum! {
    /// `queue_settings.job_tier`.
    pub enum JobTier ("job tier") {
        Spot = "spot",
        Basic = "basic",
        Standard = "standard",
        Premium = "premium",
    }
}

choice_enum! {
    /// `queue_settings.priority`.
    pub enum Priority ("priority") {
        Low = "low",
        Medium = "medium",
        High = "high",
    }
}

choice_enum! {
    /// `type:` of a model: how its files are laid out (only MLflow and Triton models can be
    /// deployed without a scoring script).
    #[derive(Default)]
    pub enum ModelType ("model type") {
        #[default]
        CustomModel = "custom_model",
        MlflowModel = "mlflow_model",
        TritonModel = "triton_model",
    }
}

choice_enum! {
    /// `auth_mode:` of an online endpoint. tug serves `key` and `aml_token`; `aad_token` is
    /// read so the caller can refuse it with a clear message.
    #[derive(Default)]
    pub enum AuthMode ("auth mode") {
        #[default]
        Key = "key",
        AmlToken = "aml_token",
        AadToken = "aad_token",
    }
}

choice_enum! {
    /// Where an online endpoint or deployment runs: `managed` (Azure's VMs; tug's local
    /// Docker) or `kubernetes` (an attached cluster).
    #[derive(Default)]
    pub enum EndpointComputeType ("deployment type") {
        #[default]
        Managed = "managed",
        Kubernetes = "kubernetes",
    }
}

choice_enum! {
    /// `identity.type` of an online endpoint.
    pub enum EndpointIdentityType ("identity type") {
        SystemAssigned = "system_assigned",
        UserAssigned = "user_assigned",
        None = "none",
    }
}

choice_enum! {
    /// `public_network_access` / `egress_public_network_access`.
    pub enum PublicNetworkAccess ("network access setting") {
        Enabled = "enabled",
        Disabled = "disabled",
    }
}

choice_enum! {
    /// `scale_settings.type` of an online deployment.
    pub enum ScaleType ("scale type") {
        Default = "default",
        TargetUtilization = "target_utilization",
    }
}

choice_enum! {
    /// `data_collector.rolling_rate`.
    pub enum RollingRate ("rolling rate") {
        Minute = "minute",
        Hour = "hour",
        Day = "day",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_are_case_insensitive() {
        let m: InputMode = serde_yaml::from_str("RO_MOUNT").unwrap();
        assert_eq!(m, InputMode::RoMount);
        assert_eq!(OutputMode::parse("Upload"), Some(OutputMode::Upload));
        assert_eq!(InputType::parse("URI_FILE"), Some(InputType::UriFile));
        assert_eq!(serde_yaml::to_string(&m).unwrap().trim(), "ro_mount");
    }

    #[test]
    fn unknown_value_suggests_nearest() {
        let err = serde_yaml::from_str::<InputMode>("ro_mnt")
            .unwrap_err()
            .to_string();
        let marked = Marked::decode(&err).expect("marked error");
        assert!(
            marked.message.contains("did you mean `ro_mount`?"),
            "{}",
            marked.message
        );
        assert!(marked.help.contains("`eval_download`"));
    }
}
