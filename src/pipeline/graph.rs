//! A pipeline's steps as a DAG: built from the steps' bindings with every dangling or
//! circular reference found before anything runs, and the pure decision, pass after pass,
//! of which steps start, which are skipped, which are canceled and when the pipeline ends.

use std::collections::{BTreeMap, BTreeSet};

use super::binding::{InputBinding, OutputBinding};

/// A step's bindings, as its file gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepIo {
    pub inputs: BTreeMap<String, InputBinding>,
    /// Every output the step declares (its component's), bound or not.
    pub outputs: BTreeMap<String, OutputBinding>,
}

/// The pipeline's own inputs and outputs, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineIo {
    pub inputs: BTreeSet<String>,
    pub outputs: BTreeSet<String>,
}

/// A reference that cannot be followed. [`GraphError::field`] is where it is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("the pipeline has no step `{missing}`")]
    UnknownStep {
        step: String,
        input: String,
        missing: String,
        known: Vec<String>,
    },
    #[error("step `{upstream}` has no output `{output}`")]
    UnknownStepOutput {
        step: String,
        input: String,
        upstream: String,
        output: String,
        known: Vec<String>,
    },
    #[error("the pipeline has no input `{name}`")]
    UnknownParentInput {
        step: String,
        input: String,
        name: String,
        known: Vec<String>,
    },
    #[error("the pipeline has no output `{name}`")]
    UnknownParentOutput {
        step: String,
        output: String,
        name: String,
        known: Vec<String>,
    },
    #[error(
        "pipeline output `{name}` is already the output `{first_output}` of step `{first_step}`"
    )]
    PromotedTwice {
        step: String,
        output: String,
        name: String,
        first_step: String,
        first_output: String,
    },
    #[error("step `{step}` reads its own output `{output}`")]
    SelfReference {
        step: String,
        input: String,
        output: String,
    },
    #[error("the steps form a cycle: {}", path.join(" → "))]
    Cycle { path: Vec<String> },
}

impl GraphError {
    /// The dotted field the error is at (`jobs.c.inputs.world_input`), for locating it.
    pub fn field(&self) -> String {
        match self {
            GraphError::UnknownStep { step, input, .. }
            | GraphError::UnknownStepOutput { step, input, .. }
            | GraphError::UnknownParentInput { step, input, .. }
            | GraphError::SelfReference { step, input, .. } => {
                format!("jobs.{step}.inputs.{input}")
            }
            GraphError::UnknownParentOutput { step, output, .. }
            | GraphError::PromotedTwice { step, output, .. } => {
                format!("jobs.{step}.outputs.{output}")
            }
            GraphError::Cycle { path } => format!("jobs.{}", path[0]),
        }
    }

    /// What to do about it.
    pub fn help(&self) -> String {
        let among = |what: &str, known: &[String]| {
            if known.is_empty() {
                format!("there are no {what}")
            } else {
                format!("the {what} are {}", quoted(known))
            }
        };
        match self {
            GraphError::UnknownStep { missing, known, .. } => match nearest(missing, known) {
                Some(n) => format!("did you mean `{n}`? {}", among("steps", known)),
                None => among("steps", known),
            },
            GraphError::UnknownStepOutput {
                upstream,
                output,
                known,
                ..
            } => match nearest(output, known) {
                Some(n) => format!(
                    "did you mean `{n}`? {}",
                    among(&format!("outputs of `{upstream}`"), known)
                ),
                None => format!(
                    "{}; declare `{output}` under the step's (or its component's) `outputs:`",
                    among(&format!("outputs of `{upstream}`"), known)
                ),
            },
            GraphError::UnknownParentInput { name, known, .. } => format!(
                "{}; declare `{name}` under the pipeline's top-level `inputs:`",
                among("pipeline inputs", known)
            ),
            GraphError::UnknownParentOutput { name, known, .. } => format!(
                "{}; declare `{name}` under the pipeline's top-level `outputs:` (it may be empty: `{name}:`)",
                among("pipeline outputs", known)
            ),
            GraphError::PromotedTwice { name, .. } => {
                format!(
                    "one step output per pipeline output: declare another one for this step, or drop `${{{{parent.outputs.{name}}}}}`"
                )
            }
            GraphError::SelfReference { .. } => {
                "a step reads the outputs of steps before it; split the step in two".into()
            }
            GraphError::Cycle { .. } => {
                "a step cannot wait for itself: one of these inputs must come from elsewhere".into()
            }
        }
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn nearest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    crate::spec::nearest(name, known.iter().map(String::as_str))
}

/// A checked DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// Steps in an order where each comes after everything it reads (ties by name).
    order: Vec<String>,
    upstream: BTreeMap<String, BTreeSet<String>>,
    /// `pipeline output → (step, step output)`.
    promoted: BTreeMap<String, (String, String)>,
}

impl Graph {
    /// Checks every binding and orders the steps; all the errors, not just the first.
    pub fn build(
        steps: &BTreeMap<String, StepIo>,
        pipeline: &PipelineIo,
    ) -> Result<Graph, Vec<GraphError>> {
        let names: Vec<String> = steps.keys().cloned().collect();
        let mut errors = Vec::new();
        let mut upstream: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut promoted: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (step, io) in steps {
            let ups = upstream.entry(step.clone()).or_default();
            for (input, binding) in &io.inputs {
                match binding {
                    InputBinding::ParentInput(name) if !pipeline.inputs.contains(name) => {
                        errors.push(GraphError::UnknownParentInput {
                            step: step.clone(),
                            input: input.clone(),
                            name: name.clone(),
                            known: pipeline.inputs.iter().cloned().collect(),
                        });
                    }
                    InputBinding::StepOutput { step: from, output } => match steps.get(from) {
                        None => errors.push(GraphError::UnknownStep {
                            step: step.clone(),
                            input: input.clone(),
                            missing: from.clone(),
                            known: names.clone(),
                        }),
                        Some(_) if from == step => errors.push(GraphError::SelfReference {
                            step: step.clone(),
                            input: input.clone(),
                            output: output.clone(),
                        }),
                        Some(up) if !up.outputs.contains_key(output) => {
                            errors.push(GraphError::UnknownStepOutput {
                                step: step.clone(),
                                input: input.clone(),
                                upstream: from.clone(),
                                output: output.clone(),
                                known: up.outputs.keys().cloned().collect(),
                            })
                        }
                        Some(_) => {
                            ups.insert(from.clone());
                        }
                    },
                    _ => {}
                }
            }
            for (output, binding) in &io.outputs {
                let OutputBinding::ParentOutput(name) = binding else {
                    continue;
                };
                if !pipeline.outputs.contains(name) {
                    errors.push(GraphError::UnknownParentOutput {
                        step: step.clone(),
                        output: output.clone(),
                        name: name.clone(),
                        known: pipeline.outputs.iter().cloned().collect(),
                    });
                } else if let Some((first_step, first_output)) = promoted.get(name) {
                    errors.push(GraphError::PromotedTwice {
                        step: step.clone(),
                        output: output.clone(),
                        name: name.clone(),
                        first_step: first_step.clone(),
                        first_output: first_output.clone(),
                    });
                } else {
                    promoted.insert(name.clone(), (step.clone(), output.clone()));
                }
            }
        }
        match topological_order(&upstream) {
            Ok(order) if errors.is_empty() => Ok(Graph {
                order,
                upstream,
                promoted,
            }),
            Ok(_) => Err(errors),
            Err(path) => {
                errors.push(GraphError::Cycle { path });
                Err(errors)
            }
        }
    }

    /// Every step, each after the steps it reads.
    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// The steps `step` reads outputs of.
    pub fn upstream(&self, step: &str) -> impl Iterator<Item = &str> {
        self.upstream
            .get(step)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// The step output each pipeline output is.
    pub fn promoted(&self) -> &BTreeMap<String, (String, String)> {
        &self.promoted
    }
}

/// Kahn's order, or one cycle as `a → b → … → a` when there is one.
fn topological_order(
    upstream: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<String>, Vec<String>> {
    let mut waiting: BTreeMap<&str, usize> = upstream
        .iter()
        .map(|(s, ups)| (s.as_str(), ups.len()))
        .collect();
    let mut order = Vec::with_capacity(upstream.len());
    loop {
        let ready: Vec<&str> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(s, _)| *s)
            .collect();
        if ready.is_empty() {
            break;
        }
        for s in ready {
            waiting.remove(s);
            order.push(s.to_string());
            for (other, ups) in upstream {
                if ups.contains(s)
                    && let Some(n) = waiting.get_mut(other.as_str())
                {
                    *n -= 1;
                }
            }
        }
    }
    if waiting.is_empty() {
        return Ok(order);
    }
    // Every step left waits on another step left: walk upstream until a step repeats.
    let mut path: Vec<String> = Vec::new();
    let mut at = *waiting.keys().next().expect("a step is left");
    loop {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut cycle: Vec<String> = path[i..].to_vec();
            // Said in the direction data flows (producer → consumer), from its first step
            // by name, so the same cycle always reads the same.
            cycle.reverse();
            let first = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
            cycle.rotate_left(first);
            cycle.push(cycle[0].clone());
            return Err(cycle);
        }
        path.push(at.to_string());
        at = upstream[at]
            .iter()
            .find(|u| waiting.contains_key(u.as_str()))
            .expect("a waiting step waits on a waiting step");
    }
}

/// Where a step is, as the controller records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Waiting,
    Running,
    Completed,
    /// Not run: an earlier run's outputs were reused.
    Reused,
    Failed,
    Canceled,
    /// Not run: a step it reads failed, or the pipeline stopped.
    Skipped,
}

impl StepState {
    fn succeeded(self) -> bool {
        matches!(self, StepState::Completed | StepState::Reused)
    }
    fn ended(self) -> bool {
        !matches!(self, StepState::Waiting | StepState::Running)
    }
}

/// What the controller does next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Next {
    /// Steps whose inputs all exist, within the concurrency limit, in graph order.
    pub start: Vec<String>,
    /// Running steps to cancel (a failure with `continue_on_step_failure: false`).
    pub cancel: Vec<String>,
    /// Waiting steps that will never run, and why.
    pub skip: Vec<(String, String)>,
    /// The pipeline's end, once nothing runs and nothing more will.
    pub end: Option<PipelineEnd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineEnd {
    Completed,
    Failed,
    /// A step was canceled (the pipeline was) and none failed.
    Canceled,
}

/// One pass: given each step's state, what to start, cancel and skip, and whether the
/// pipeline has ended. `limit` bounds the steps running at once (0: no bound).
pub fn next(
    graph: &Graph,
    states: &BTreeMap<String, StepState>,
    continue_on_step_failure: bool,
    limit: usize,
) -> Next {
    let state = |s: &str| states.get(s).copied().unwrap_or(StepState::Waiting);
    let failed: Vec<&str> = graph
        .order
        .iter()
        .map(String::as_str)
        .filter(|s| state(s) == StepState::Failed)
        .collect();
    let stopping = !failed.is_empty() && !continue_on_step_failure;
    let mut out = Next::default();
    let mut running = graph
        .order
        .iter()
        .filter(|s| state(s) == StepState::Running)
        .count();
    // Skips decided in this pass count for the steps after them (graph order).
    let mut skipped: BTreeSet<&str> = BTreeSet::new();
    for step in &graph.order {
        match state(step) {
            StepState::Running if stopping => out.cancel.push(step.clone()),
            StepState::Waiting => {
                let blocked = graph
                    .upstream(step)
                    .find(|u| skipped.contains(u) || (state(u).ended() && !state(u).succeeded()));
                if let Some(up) = blocked {
                    out.skip.push((
                        step.clone(),
                        format!("step `{up}`, whose outputs it reads, did not complete"),
                    ));
                    skipped.insert(step);
                } else if stopping {
                    out.skip.push((
                        step.clone(),
                        format!(
                            "step `{}` failed and `continue_on_step_failure` is false",
                            failed[0]
                        ),
                    ));
                    skipped.insert(step);
                } else if graph.upstream(step).all(|u| state(u).succeeded())
                    && (limit == 0 || running < limit)
                {
                    out.start.push(step.clone());
                    running += 1;
                }
            }
            _ => {}
        }
    }
    let all_ended = graph
        .order
        .iter()
        .all(|s| state(s).ended() || skipped.contains(s.as_str()));
    if all_ended && out.start.is_empty() {
        let ok = graph
            .order
            .iter()
            .all(|s| state(s).succeeded() && !skipped.contains(s.as_str()));
        let canceled = graph.order.iter().any(|s| state(s) == StepState::Canceled);
        out.end = Some(if ok {
            PipelineEnd::Completed
        } else if failed.is_empty() && canceled {
            PipelineEnd::Canceled
        } else {
            PipelineEnd::Failed
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepState::*;

    fn out(step: &str, output: &str) -> InputBinding {
        InputBinding::StepOutput {
            step: step.into(),
            output: output.into(),
        }
    }

    /// A step: its name, its inputs' bindings, its outputs' names.
    type Step<'a> = (&'a str, &'a [(&'a str, InputBinding)], &'a [&'a str]);

    fn steps(edges: &[Step<'_>]) -> BTreeMap<String, StepIo> {
        edges
            .iter()
            .map(|(name, inputs, outputs)| {
                (
                    name.to_string(),
                    StepIo {
                        inputs: inputs
                            .iter()
                            .map(|(k, b)| (k.to_string(), b.clone()))
                            .collect(),
                        outputs: outputs
                            .iter()
                            .map(|o| (o.to_string(), OutputBinding::Own))
                            .collect(),
                    },
                )
            })
            .collect()
    }

    fn diamond() -> Graph {
        let s = steps(&[
            ("prep", &[], &["train_data", "test_data"]),
            ("train", &[("data", out("prep", "train_data"))], &["model"]),
            (
                "evaluate",
                &[
                    ("model", out("train", "model")),
                    ("data", out("prep", "test_data")),
                ],
                &["report"],
            ),
            ("lint", &[("x", InputBinding::Value)], &[]),
        ]);
        Graph::build(&s, &PipelineIo::default()).unwrap()
    }

    fn states(list: &[(&str, StepState)]) -> BTreeMap<String, StepState> {
        list.iter().map(|(s, st)| (s.to_string(), *st)).collect()
    }

    #[test]
    fn steps_come_after_what_they_read() {
        let g = diamond();
        assert_eq!(g.order(), ["lint", "prep", "train", "evaluate"]);
        assert_eq!(
            g.upstream("evaluate").collect::<Vec<_>>(),
            ["prep", "train"]
        );
    }

    #[test]
    fn every_dangling_reference_is_reported_with_its_field_and_a_fix() {
        let mut s = steps(&[
            ("b", &[], &["world_output"]),
            (
                "c",
                &[
                    ("w", out("bb", "world_output")),
                    ("v", out("b", "world_outptu")),
                    ("p", InputBinding::ParentInput("missing".into())),
                    ("me", out("c", "r")),
                ],
                &["r"],
            ),
        ]);
        s.get_mut("c")
            .unwrap()
            .outputs
            .insert("r".into(), OutputBinding::ParentOutput("nowhere".into()));
        let errors = Graph::build(
            &s,
            &PipelineIo {
                inputs: ["top".to_string()].into(),
                outputs: BTreeSet::new(),
            },
        )
        .unwrap_err();
        let shown: Vec<(String, String, String)> = errors
            .iter()
            .map(|e| (e.field(), e.to_string(), e.help()))
            .collect();
        assert_eq!(shown.len(), 5, "{shown:#?}");
        assert!(shown.contains(&(
            "jobs.c.inputs.w".into(),
            "the pipeline has no step `bb`".into(),
            "did you mean `b`? the steps are `b`, `c`".into()
        )));
        assert!(shown.iter().any(|(f, m, h)| f == "jobs.c.inputs.v"
            && m == "step `b` has no output `world_outptu`"
            && h.starts_with("did you mean `world_output`?")));
        assert!(shown.iter().any(|(f, _, h)| f == "jobs.c.inputs.p"
            && h.contains("`top`")
            && h.contains("top-level `inputs:`")));
        assert!(shown.iter().any(|(f, _, _)| f == "jobs.c.inputs.me"));
        assert!(shown.iter().any(
            |(f, _, h)| f == "jobs.c.outputs.r" && h.contains("there are no pipeline outputs")
        ));
    }

    #[test]
    fn a_cycle_is_named_step_by_step() {
        let s = steps(&[
            ("a", &[("i", out("c", "o"))], &["o"]),
            ("b", &[("i", out("a", "o"))], &["o"]),
            ("c", &[("i", out("b", "o"))], &["o"]),
            ("d", &[("i", out("a", "o"))], &[]),
        ]);
        let errors = Graph::build(&s, &PipelineIo::default()).unwrap_err();
        assert_eq!(errors.len(), 1);
        let msg = errors[0].to_string();
        assert!(msg.ends_with("a → b → c → a"), "{msg}");
        assert_eq!(errors[0].field(), "jobs.a");
        assert!(!msg.contains('d'), "only the cycle: {msg}");
    }

    #[test]
    fn a_pipeline_output_has_one_producer() {
        let mut s = steps(&[("a", &[], &["o"]), ("b", &[], &["o"])]);
        for step in ["a", "b"] {
            s.get_mut(step)
                .unwrap()
                .outputs
                .insert("o".into(), OutputBinding::ParentOutput("final".into()));
        }
        let io = PipelineIo {
            inputs: BTreeSet::new(),
            outputs: ["final".to_string()].into(),
        };
        let errors = Graph::build(&s, &io).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field(), "jobs.b.outputs.o");
        s.get_mut("b")
            .unwrap()
            .outputs
            .insert("o".into(), OutputBinding::Own);
        let g = Graph::build(&s, &io).unwrap();
        assert_eq!(g.promoted()["final"], ("a".to_string(), "o".to_string()));
    }

    #[test]
    fn steps_start_when_their_inputs_exist_within_the_limit() {
        let g = diamond();
        let n = next(&g, &states(&[]), false, 0);
        assert_eq!(n.start, ["lint", "prep"]);
        let n = next(&g, &states(&[]), false, 1);
        assert_eq!(n.start, ["lint"]);
        let n = next(&g, &states(&[("lint", Running)]), false, 1);
        assert!(n.start.is_empty());
        let n = next(
            &g,
            &states(&[("lint", Completed), ("prep", Reused)]),
            false,
            0,
        );
        assert_eq!(n.start, ["train"]);
        assert_eq!(n.end, None);
        let done = states(&[
            ("lint", Completed),
            ("prep", Reused),
            ("train", Completed),
            ("evaluate", Reused),
        ]);
        assert_eq!(next(&g, &done, false, 0).end, Some(PipelineEnd::Completed));
    }

    #[test]
    fn a_failure_stops_the_pipeline_unless_steps_may_go_on() {
        let g = diamond();
        let s = states(&[("lint", Running), ("prep", Failed)]);
        // Stop: running steps are canceled, everything waiting is skipped.
        let n = next(&g, &s, false, 0);
        assert_eq!(n.cancel, ["lint"]);
        let skipped: Vec<&str> = n.skip.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(skipped, ["train", "evaluate"]);
        assert!(n.skip[0].1.contains("`prep`"), "{:?}", n.skip);
        assert_eq!(n.end, None, "lint still runs");
        // Go on: independent steps continue; only what reads the failed step is skipped.
        let n = next(&g, &s, true, 0);
        assert!(n.cancel.is_empty());
        assert_eq!(n.skip.len(), 2);
        let s = states(&[("lint", Waiting), ("prep", Failed)]);
        let n = next(&g, &s, true, 0);
        assert_eq!(n.start, ["lint"]);
        let s = states(&[
            ("lint", Completed),
            ("prep", Failed),
            ("train", Skipped),
            ("evaluate", Skipped),
        ]);
        assert_eq!(next(&g, &s, true, 0).end, Some(PipelineEnd::Failed));
        let s = states(&[("lint", Canceled), ("prep", Completed), ("train", Skipped)]);
        assert_eq!(next(&g, &s, false, 0).end, Some(PipelineEnd::Canceled));
        // The end comes in the same pass as the last skips.
        let s = states(&[("lint", Completed), ("prep", Failed)]);
        let n = next(&g, &s, true, 0);
        assert_eq!(n.end, Some(PipelineEnd::Failed));
    }
}
