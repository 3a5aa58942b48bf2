//! Step reuse, decided by content and explained: a step is reused when everything its
//! result depends on (its [`Fingerprint`]) hashes the same as an earlier completed step's,
//! and otherwise the plan says what changed since the run it would have reused. Data
//! enters by the content of every file, not by path (Azure ML misses changed data behind
//! an unchanged path); a step reading an upstream step that runs is decided once that
//! step's outputs exist, so an upstream rerun with byte-identical outputs still lets it be
//! reused. Pure: `tug job plan` prints exactly what the controller decides.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Everything a step's result depends on, resolved. Left out on purpose: the compute
/// target and resources (the same step gives the same result elsewhere, as on Azure ML),
/// display names, tags and descriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The command as written, before input values are put in (they enter below).
    pub command: String,
    /// `path → sha256` of every file of the code snapshot.
    pub code: BTreeMap<String, String>,
    /// The environment's image, by content (its content-hash tag or digest).
    pub environment: String,
    /// Name → SHA-256 of the value as written, never the value: a `${{secrets.X}}`
    /// reference is hashed as the reference, so `tug secret set` alone does not rerun a step
    /// (mark such a component `is_deterministic: false`).
    pub environment_variables: BTreeMap<String, String>,
    /// Literal inputs, as rendered into the command.
    pub literals: BTreeMap<String, String>,
    pub data: BTreeMap<String, DataContent>,
    /// Declared outputs: name → `type` and `mode`.
    pub outputs: BTreeMap<String, String>,
    /// A sweep step's settings, each as canonical JSON: `search_space.<name>`,
    /// `sampling_algorithm`, `objective`, `limits`, `early_termination`. Empty (and left out,
    /// so a command step's key is what it was) for other steps.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sweep: BTreeMap<String, String>,
}

/// A data input's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataContent {
    /// `relative path → sha256` of each file (a `uri_file` is one entry, its file name).
    Files(BTreeMap<String, String>),
    /// The output of a step that has not produced it yet.
    Pending { step: String },
}

impl Fingerprint {
    /// The reuse key: a SHA-256 of the fingerprint's canonical JSON (maps in key order),
    /// or `None` while an input is still [`DataContent::Pending`].
    pub fn key(&self) -> Option<String> {
        if self.pending().is_some() {
            return None;
        }
        let json = serde_json::to_vec(self).expect("a fingerprint serializes");
        Some(crate::snapshot::sha256_hex(&json))
    }

    /// The first upstream step whose output this step still waits for.
    pub fn pending(&self) -> Option<&str> {
        self.data.values().find_map(|d| match d {
            DataContent::Pending { step } => Some(step.as_str()),
            DataContent::Files(_) => None,
        })
    }
}

/// How a step may be reused, from its settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReusePolicy {
    /// The pipeline's `settings.force_rerun`.
    pub force_rerun: bool,
    /// The component's `is_deterministic: false`.
    pub not_deterministic: bool,
}

/// An earlier step run, for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prior {
    pub run_id: String,
    pub fingerprint: Fingerprint,
}

/// The decision for one step, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Not run: `run`'s outputs are used.
    Reuse {
        run: String,
    },
    Run {
        reason: Reason,
    },
    /// Decided when the step named has produced its outputs.
    WaitFor {
        step: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Reason {
    ForceRerun,
    NotDeterministic,
    /// No earlier run of this step to compare with.
    FirstRun,
    /// What differs from the step's latest earlier run.
    Changed {
        since: String,
        changes: Vec<Change>,
    },
    /// Nothing changed, but no earlier run with this content can be used.
    NoUsableRun {
        because: Unusable,
    },
    /// Its inputs could not be read to compare (a folder gone, the engine away): it runs,
    /// and the run reports what is wrong.
    Unreadable {
        message: String,
    },
}

/// Why an earlier run with the same content cannot stand for a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Unusable {
    /// It completed, but its run folder (its outputs) is gone.
    OutputsGone { run: String },
    /// The latest run with this content did not complete.
    DidNotComplete { run: String },
}

/// One difference between two fingerprints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Change {
    Command,
    CodeFile {
        path: String,
        how: How,
    },
    Environment {
        before: String,
        after: String,
    },
    /// Values are not shown: they may be secrets in the clear.
    EnvironmentVariable {
        name: String,
        how: How,
    },
    Literal {
        input: String,
        before: Option<String>,
        after: Option<String>,
    },
    DataFile {
        input: String,
        path: String,
        how: How,
    },
    /// A data input added or removed, or turned from data into a literal.
    Input {
        input: String,
        how: How,
    },
    Outputs,
    /// A sweep step's setting (`search_space.lr`, `limits`, ...).
    Sweep {
        setting: String,
        before: Option<String>,
        after: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    Added,
    Removed,
    Modified,
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            How::Added => "added",
            How::Removed => "removed",
            How::Modified => "changed",
        })
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        match self {
            Change::Command => f.write_str("the command changed"),
            Change::CodeFile { path, how } => write!(f, "code file `{path}` {how}"),
            Change::Environment { before, after } => {
                write!(f, "the environment changed ({before} → {after})")
            }
            Change::EnvironmentVariable { name, how } => {
                write!(f, "environment variable `{name}` {how}")
            }
            Change::Literal {
                input,
                before,
                after,
            } => write!(f, "input `{input}`: {} → {}", shown(before), shown(after)),
            Change::DataFile { input, path, how } => {
                write!(f, "input `{input}`: file `{path}` {how}")
            }
            Change::Input { input, how } => write!(f, "input `{input}` {how}"),
            Change::Outputs => f.write_str("the declared outputs changed"),
            Change::Sweep {
                setting,
                before,
                after,
            } => write!(f, "sweep `{setting}`: {} → {}", shown(before), shown(after)),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::ForceRerun => f.write_str("settings.force_rerun is true"),
            Reason::NotDeterministic => f.write_str("the component is not deterministic"),
            Reason::FirstRun => f.write_str("no earlier run of this step"),
            Reason::NoUsableRun { because } => match because {
                Unusable::OutputsGone { run } => write!(
                    f,
                    "nothing changed since run {run}, but its outputs are gone from the workspace"
                ),
                Unusable::DidNotComplete { run } => write!(
                    f,
                    "nothing changed since run {run}, but it did not complete"
                ),
            },
            Reason::Unreadable { message } => {
                write!(f, "its inputs could not be read to compare ({message})")
            }
            Reason::Changed { since, changes } => {
                write!(f, "since run {since}: ")?;
                let shown: Vec<String> = changes
                    .iter()
                    .take(MAX_SHOWN)
                    .map(ToString::to_string)
                    .collect();
                f.write_str(&shown.join("; "))?;
                if changes.len() > MAX_SHOWN {
                    write!(f, "; and {} more", changes.len() - MAX_SHOWN)?;
                }
                Ok(())
            }
        }
    }
}

impl Decision {
    /// The reason alone, for a table whose other columns say run or reuse.
    pub fn why(&self) -> String {
        match self {
            Decision::Reuse { .. } => "nothing it depends on changed".into(),
            Decision::Run { reason } => reason.to_string(),
            Decision::WaitFor { step } => {
                format!(
                    "decided after `{step}`, which runs: reused if its outputs come out the same"
                )
            }
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Reuse { run } => write!(f, "reuse run {run}: nothing it depends on changed"),
            Decision::Run { reason } => write!(f, "run: {reason}"),
            Decision::WaitFor { step } => {
                write!(
                    f,
                    "decided after `{step}`, which runs: reused if its outputs come out the same"
                )
            }
        }
    }
}

/// Changes listed in a one-line reason; `-o json` has them all.
const MAX_SHOWN: usize = 5;

/// Decides one step. `same_key` is an earlier completed step run with this fingerprint's
/// key, if the store has one; `latest` the step's latest earlier run, to explain a rerun.
pub fn decide(
    fingerprint: &Fingerprint,
    policy: ReusePolicy,
    same_key: Option<&str>,
    unusable: Option<Unusable>,
    latest: Option<&Prior>,
) -> Decision {
    if policy.force_rerun {
        return Decision::Run {
            reason: Reason::ForceRerun,
        };
    }
    if policy.not_deterministic {
        return Decision::Run {
            reason: Reason::NotDeterministic,
        };
    }
    if let Some(step) = fingerprint.pending() {
        return Decision::WaitFor {
            step: step.to_string(),
        };
    }
    if let Some(run) = same_key {
        return Decision::Reuse {
            run: run.to_string(),
        };
    }
    if let Some(why) = unusable {
        return Decision::Run {
            reason: Reason::NoUsableRun { because: why },
        };
    }
    match latest {
        None => Decision::Run {
            reason: Reason::FirstRun,
        },
        Some(prior) => {
            let changes = changes(&prior.fingerprint, fingerprint);
            let reason = if changes.is_empty() {
                // Same content, yet no completed run has it: the latest did not complete.
                Reason::NoUsableRun {
                    because: Unusable::DidNotComplete {
                        run: prior.run_id.clone(),
                    },
                }
            } else {
                Reason::Changed {
                    since: prior.run_id.clone(),
                    changes,
                }
            };
            Decision::Run { reason }
        }
    }
}

/// Every difference from `before` to `after`, in a stable order.
pub fn changes(before: &Fingerprint, after: &Fingerprint) -> Vec<Change> {
    let mut out = Vec::new();
    if before.command != after.command {
        out.push(Change::Command);
    }
    for (path, how) in map_diff(&before.code, &after.code) {
        out.push(Change::CodeFile { path, how });
    }
    if before.environment != after.environment {
        out.push(Change::Environment {
            before: before.environment.clone(),
            after: after.environment.clone(),
        });
    }
    for (name, how) in map_diff(&before.environment_variables, &after.environment_variables) {
        out.push(Change::EnvironmentVariable { name, how });
    }
    for (input, b, a) in value_changes(&before.literals, &after.literals) {
        out.push(Change::Literal {
            input,
            before: b,
            after: a,
        });
    }
    let names: std::collections::BTreeSet<&String> =
        before.data.keys().chain(after.data.keys()).collect();
    for input in names {
        match (before.data.get(input), after.data.get(input)) {
            (Some(DataContent::Files(b)), Some(DataContent::Files(a))) => {
                for (path, how) in map_diff(b, a) {
                    out.push(Change::DataFile {
                        input: input.clone(),
                        path,
                        how,
                    });
                }
            }
            (None, Some(_)) => out.push(Change::Input {
                input: input.clone(),
                how: How::Added,
            }),
            (Some(_), None) => out.push(Change::Input {
                input: input.clone(),
                how: How::Removed,
            }),
            (b, a) if b != a => out.push(Change::Input {
                input: input.clone(),
                how: How::Modified,
            }),
            _ => {}
        }
    }
    if before.outputs != after.outputs {
        out.push(Change::Outputs);
    }
    for (setting, b, a) in value_changes(&before.sweep, &after.sweep) {
        out.push(Change::Sweep {
            setting,
            before: b,
            after: a,
        });
    }
    out
}

/// Each key whose value differs from `before` to `after` (a missing one is `None`), in
/// key order, with both values.
fn value_changes(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| (k.clone(), before.get(k).cloned(), after.get(k).cloned()))
        .collect()
}

fn map_diff(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<(String, How)> {
    let mut out = Vec::new();
    for (k, v) in after {
        match before.get(k) {
            None => out.push((k.clone(), How::Added)),
            Some(b) if b != v => out.push((k.clone(), How::Modified)),
            Some(_) => {}
        }
    }
    for k in before.keys() {
        if !after.contains_key(k) {
            out.push((k.clone(), How::Removed));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn train() -> Fingerprint {
        Fingerprint {
            command: "python train.py --data ${{inputs.data}} --lr ${{inputs.lr}}".into(),
            code: files(&[("train.py", "aa"), ("util.py", "bb")]),
            environment: "tug/env:1111".into(),
            environment_variables: files(&[("SEED", "1")]),
            literals: files(&[("lr", "0.1")]),
            data: [(
                "data".to_string(),
                DataContent::Files(files(&[("train/a.csv", "c1"), ("train/b.csv", "c2")])),
            )]
            .into(),
            outputs: files(&[("model", "uri_folder rw_mount")]),
            sweep: BTreeMap::new(),
        }
    }

    fn prior(run: &str, fp: Fingerprint) -> Prior {
        Prior {
            run_id: run.into(),
            fingerprint: fp,
        }
    }

    #[test]
    fn the_key_is_the_content_and_only_the_content() {
        let a = train();
        assert_eq!(a.key(), train().key());
        assert_eq!(a.key().unwrap().len(), 64);
        let mut b = train();
        if let Some(DataContent::Files(f)) = b.data.get_mut("data") {
            f.insert("train/b.csv".into(), "c3".into());
        }
        assert_ne!(a.key(), b.key(), "changed data behind the same path");
        let mut c = train();
        c.literals.insert("lr".into(), "0.2".into());
        assert_ne!(a.key(), c.key());
        let mut pending = train();
        pending.data.insert(
            "data".into(),
            DataContent::Pending {
                step: "prep".into(),
            },
        );
        assert_eq!(pending.key(), None);
    }

    #[test]
    fn an_unchanged_step_is_reused_and_says_from_where() {
        let d = decide(&train(), ReusePolicy::default(), Some("run_7"), None, None);
        assert_eq!(
            d,
            Decision::Reuse {
                run: "run_7".into()
            }
        );
        assert_eq!(
            d.to_string(),
            "reuse run run_7: nothing it depends on changed"
        );
    }

    #[test]
    fn settings_force_a_run() {
        let force = ReusePolicy {
            force_rerun: true,
            ..Default::default()
        };
        let d = decide(&train(), force, Some("run_7"), None, None);
        assert_eq!(d.to_string(), "run: settings.force_rerun is true");
        let nd = ReusePolicy {
            not_deterministic: true,
            ..Default::default()
        };
        assert!(matches!(
            decide(&train(), nd, Some("run_7"), None, None),
            Decision::Run {
                reason: Reason::NotDeterministic
            }
        ));
    }

    #[test]
    fn a_rerun_names_each_change_since_the_run_it_would_have_reused() {
        let before = train();
        let mut after = train();
        after.code.insert("train.py".into(), "a2".into());
        after.code.insert("new.py".into(), "nn".into());
        after.code.remove("util.py");
        after.literals.insert("lr".into(), "0.2".into());
        after.environment = "tug/env:2222".into();
        after
            .environment_variables
            .insert("SEED".into(), "2".into());
        if let Some(DataContent::Files(f)) = after.data.get_mut("data") {
            f.insert("train/b.csv".into(), "c3".into());
        }
        let d = decide(
            &after,
            ReusePolicy::default(),
            None,
            None,
            Some(&prior("run_7", before)),
        );
        let Decision::Run {
            reason: Reason::Changed { since, changes },
        } = &d
        else {
            panic!("{d:?}")
        };
        assert_eq!(since, "run_7");
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "code file `new.py` added",
                "code file `train.py` changed",
                "code file `util.py` removed",
                "the environment changed (tug/env:1111 → tug/env:2222)",
                "environment variable `SEED` changed",
                "input `lr`: 0.1 → 0.2",
                "input `data`: file `train/b.csv` changed",
            ]
        );
        let line = d.to_string();
        assert!(
            line.starts_with("run: since run run_7: code file `new.py` added; "),
            "{line}"
        );
        assert!(line.ends_with("; and 2 more"), "{line}");
    }

    #[test]
    fn a_sweep_setting_enters_the_key_and_is_named_when_it_changes() {
        let command_key = train().key();
        let mut a = train();
        a.sweep
            .insert("search_space.lr".into(), r#"{"type":"uniform"}"#.into());
        a.sweep
            .insert("limits".into(), r#"{"max_total_trials":5}"#.into());
        assert_ne!(a.key(), command_key, "a sweep is not its trial alone");
        let mut b = a.clone();
        b.sweep
            .insert("limits".into(), r#"{"max_total_trials":8}"#.into());
        assert_ne!(a.key(), b.key());
        let why: Vec<String> = changes(&a, &b).iter().map(ToString::to_string).collect();
        assert_eq!(
            why,
            [r#"sweep `limits`: {"max_total_trials":5} → {"max_total_trials":8}"#]
        );
        // A command step's stored key does not move with the new field.
        let json = serde_json::to_value(train()).unwrap();
        assert!(json.get("sweep").is_none(), "{json}");
    }

    #[test]
    fn only_the_edited_file_is_named() {
        let mut after = train();
        after.code.insert("util.py".into(), "b2".into());
        let d = decide(
            &after,
            ReusePolicy::default(),
            None,
            None,
            Some(&prior("run_7", train())),
        );
        assert_eq!(
            d.to_string(),
            "run: since run run_7: code file `util.py` changed"
        );
    }

    #[test]
    fn a_step_after_a_rerun_waits_for_its_outputs() {
        let mut fp = train();
        fp.data.insert(
            "data".into(),
            DataContent::Pending {
                step: "prep".into(),
            },
        );
        let d = decide(
            &fp,
            ReusePolicy::default(),
            None,
            None,
            Some(&prior("r", train())),
        );
        assert_eq!(
            d,
            Decision::WaitFor {
                step: "prep".into()
            }
        );
        assert!(
            d.to_string()
                .contains("reused if its outputs come out the same")
        );
    }

    #[test]
    fn a_first_run_says_so_and_json_carries_every_change() {
        let d = decide(&train(), ReusePolicy::default(), None, None, None);
        assert_eq!(d.to_string(), "run: no earlier run of this step");
        let mut after = train();
        after.data.remove("data");
        after.literals.insert("data".into(), "inline".into());
        let d = decide(
            &after,
            ReusePolicy::default(),
            None,
            None,
            Some(&prior("run_7", train())),
        );
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["decision"], "run");
        assert_eq!(json["reason"]["why"], "changed");
        assert_eq!(json["reason"]["since"], "run_7");
        let changes = json["reason"]["changes"].as_array().unwrap();
        assert_eq!(changes[0]["what"], "literal");
        assert_eq!(changes[0]["before"], serde_json::Value::Null);
        assert_eq!(
            changes[1],
            serde_json::json!({"what": "input", "input": "data", "how": "removed"})
        );
    }

    #[test]
    fn same_content_without_a_usable_run_says_why() {
        let gone = Unusable::OutputsGone {
            run: "run_3".into(),
        };
        let d = decide(&train(), ReusePolicy::default(), None, Some(gone), None);
        assert_eq!(
            d.to_string(),
            "run: nothing changed since run run_3, but its outputs are gone from the workspace"
        );
        let d = decide(
            &train(),
            ReusePolicy::default(),
            None,
            None,
            Some(&prior("run_7", train())),
        );
        assert_eq!(
            d.to_string(),
            "run: nothing changed since run run_7, but it did not complete"
        );
    }
}
