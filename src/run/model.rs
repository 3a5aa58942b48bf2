//! What a run is: its lifecycle states and the resolved job a server executes.
//!
//! A `JobSubmission` is what the CLI sends after it has parsed, validated and resolved a
//! job file (local paths made absolute, code uploaded as a snapshot, the command
//! rendered). The server never reads the user's YAML again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Lifecycle of a run (DESIGN.md "Runs"). Every transition is stored before it is acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunStatus {
    Queued,
    Preparing,
    Starting,
    Running,
    Finalizing,
    Completed,
    Failed,
    Canceled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 8] = [
        RunStatus::Queued,
        RunStatus::Preparing,
        RunStatus::Starting,
        RunStatus::Running,
        RunStatus::Finalizing,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "Queued",
            RunStatus::Preparing => "Preparing",
            RunStatus::Starting => "Starting",
            RunStatus::Running => "Running",
            RunStatus::Finalizing => "Finalizing",
            RunStatus::Completed => "Completed",
            RunStatus::Failed => "Failed",
            RunStatus::Canceled => "Canceled",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Canceled
        )
    }

    /// Whether the lifecycle allows going from `self` to `next`. Terminal states are
    /// final; any live state may end (fail or be canceled); otherwise only forward.
    pub fn can_become(self, next: RunStatus) -> bool {
        if self.is_terminal() {
            return false;
        }
        if next.is_terminal() {
            return true;
        }
        (next as u8) > (self as u8)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job file resolved into everything a compute target needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobSubmission {
    /// Run id; the CLI may pass the file's `name`, else the server makes one.
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub experiment_name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The command with every `${{...}}` already rendered.
    pub command: String,
    /// sha256 of the code snapshot uploaded to the server, if the job has `code:`.
    pub code_snapshot: Option<String>,
    pub environment: ResolvedEnvironment,
    #[serde(default)]
    pub environment_variables: BTreeMap<String, String>,
    pub compute: String,
    #[serde(default)]
    pub inputs: BTreeMap<String, InputBinding>,
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputBinding>,
    #[serde(default)]
    pub resources: Resources,
    /// `limits.timeout` in seconds.
    pub timeout_seconds: Option<u64>,
    /// The job file, for display.
    pub source: Option<String>,
}

/// An environment with every local file read and every context uploaded: enough to
/// compute its content hash and build it without the user's working tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResolvedEnvironment {
    /// A base image, optionally with a conda/pip file installed on top.
    Image {
        image: String,
        /// The conda file's text, if any.
        conda_file: Option<String>,
        /// Pip requirements derived from the conda file.
        #[serde(default)]
        pip_requirements: Vec<String>,
    },
    /// A Docker build context uploaded as a snapshot.
    Build {
        context_snapshot: String,
        dockerfile_path: String,
    },
}

/// How an input reaches the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputBinding {
    /// A literal, already rendered to its command-line text.
    Literal { text: String },
    /// A local file or folder on the server's host.
    Data {
        host_path: String,
        /// Where the container sees it (file path for uri_file).
        container_path: String,
        is_file: bool,
        mode: InputMode,
    },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InputMode {
    /// Bind-mounted read-only.
    RoMount,
    /// Copied into the container before start.
    Download,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputBinding {
    /// Writable folder (or file path for uri_file) inside the container.
    pub container_path: String,
    pub is_file: bool,
    /// `outputs.<o>.path` on a datastore of this host: where the output is copied once the
    /// run completes (`${{name}}` stands for the run's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore_path: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub instance_count: Option<u32>,
    pub instance_type: Option<String>,
    /// Docker-style size, e.g. `2g`.
    pub shm_size: Option<String>,
}

/// Where tug puts things inside a run's container. Fixed, so the CLI can render
/// `${{inputs.x}}` before the server is involved.
pub mod paths {
    pub const ROOT: &str = "/tug";
    /// Code root and working directory; `./outputs` and `./logs` live below it.
    pub const CODE: &str = "/tug/code";
    pub const INPUTS: &str = "/tug/inputs";
    pub const OUTPUTS: &str = "/tug/outputs";
    /// `HOME` of the run's user (writable, unlike `/` for a uid without a passwd entry).
    pub const HOME: &str = "/tug/home";

    pub fn input(name: &str) -> String {
        format!("{INPUTS}/{name}")
    }
    pub fn output(name: &str) -> String {
        format!("{OUTPUTS}/{name}")
    }
}

/// Whether `id` can name a run: it becomes a folder and part of a container name, so
/// only characters that are safe in both (Azure's own rule for job names).
pub fn valid_run_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && id.len() <= 255
}

/// A fresh run id in Azure's style: an adjective-noun name is the display name; the
/// id is unique and sortable enough to read.
pub fn new_run_id() -> String {
    const ADJ: &[&str] = &[
        "amber", "brave", "calm", "dreamy", "eager", "frosty", "gentle", "happy", "icy", "jolly",
        "keen", "lucid", "mellow", "nimble", "olive", "plucky", "quiet", "rustic", "sunny", "tidy",
        "upbeat", "vivid", "witty", "zesty",
    ];
    const NOUN: &[&str] = &[
        "apple", "badger", "cactus", "dingo", "eagle", "fig", "garden", "harbor", "island",
        "jackal", "kettle", "lemon", "mango", "needle", "otter", "pepper", "quill", "river",
        "salmon", "tiger", "umbrella", "violin", "walrus", "yak",
    ];
    let r = crate::workspace::random_hex(6);
    let n = u64::from_str_radix(&r, 16).unwrap_or(0);
    format!(
        "{}_{}_{}",
        ADJ[(n % ADJ.len() as u64) as usize],
        NOUN[((n / 97) % NOUN.len() as u64) as usize],
        &r[..8]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_safe_as_folders_and_container_names() {
        assert!(valid_run_id("happy_apple_1fd6597e"));
        assert!(valid_run_id("run-1"));
        for bad in ["", "../x", "a/b", "a b", "_lead", "é"] {
            assert!(!valid_run_id(bad), "{bad}");
        }
        assert!(!valid_run_id(&"a".repeat(256)));
        let id = new_run_id();
        assert!(valid_run_id(&id), "{id}");
        assert_ne!(id, new_run_id());
    }

    #[test]
    fn lifecycle_only_moves_forward_and_terminal_is_final() {
        use RunStatus::*;
        assert!(Queued.can_become(Preparing));
        assert!(Preparing.can_become(Running));
        assert!(!Running.can_become(Preparing));
        assert!(Running.can_become(Canceled));
        assert!(Queued.can_become(Failed));
        assert!(!Completed.can_become(Failed));
        assert!(!Canceled.can_become(Running));
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
    }
}
