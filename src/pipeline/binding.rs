//! What a pipeline step's input or output value refers to in its parent: the
//! `${{parent.inputs.x}}`, `${{parent.jobs.<step>.outputs.y}}` and `${{parent.outputs.z}}`
//! bindings of Azure ML's pipeline files. Pure: a string in, a [`Binding`] out.

use std::fmt;

/// The value given to a step's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputBinding {
    /// `${{parent.inputs.<name>}}`: the pipeline's own input.
    ParentInput(String),
    /// `${{parent.jobs.<step>.outputs.<output>}}`: an edge of the DAG.
    StepOutput { step: String, output: String },
    /// Anything else: a literal value or data the step names itself.
    Value,
}

/// Where a step's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputBinding {
    /// `${{parent.outputs.<name>}}`: promoted to the pipeline's output.
    ParentOutput(String),
    /// Its own default place (or a path it names).
    Own,
}

/// A `${{...}}` in a binding position that is none of the forms Azure ML accepts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBinding {
    pub written: String,
    pub help: String,
}

impl fmt::Display for BadBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a binding tug can follow", self.written)
    }
}

/// The `inner` of a value that is exactly one `${{ inner }}` (spaces allowed inside).
fn whole_expression(value: &str) -> Option<&str> {
    let v = value.trim();
    let inner = v.strip_prefix("${{")?.strip_suffix("}}")?;
    (!inner.contains("${{") && !inner.contains("}}")).then_some(inner.trim())
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Reads a step input's value (`value` as written in the file).
pub fn input_binding(value: &str) -> Result<InputBinding, BadBinding> {
    let Some(inner) = whole_expression(value) else {
        if value.contains("${{parent.") {
            return Err(BadBinding {
                written: value.to_string(),
                help: "a binding is the whole value: `${{parent.inputs.x}}` or `${{parent.jobs.<step>.outputs.<name>}}`, with no text around it".into(),
            });
        }
        return Ok(InputBinding::Value);
    };
    let parts: Vec<&str> = inner.split('.').collect();
    match parts.as_slice() {
        ["parent", "inputs", name] if name_ok(name) => {
            Ok(InputBinding::ParentInput(name.to_string()))
        }
        ["parent", "jobs", step, "outputs", output] if name_ok(step) && name_ok(output) => {
            Ok(InputBinding::StepOutput {
                step: step.to_string(),
                output: output.to_string(),
            })
        }
        ["parent", ..] => Err(BadBinding {
            written: value.to_string(),
            help: "in a step's inputs, use `${{parent.inputs.<name>}}` or `${{parent.jobs.<step>.outputs.<name>}}`".into(),
        }),
        // `${{inputs.x}}` and friends belong in a command, not in a step's input values.
        _ => Err(BadBinding {
            written: value.to_string(),
            help: format!(
                "a step's input is bound in its parent's context: write `${{{{parent.{inner}}}}}` or a literal value"
            ),
        }),
    }
}

/// Reads a step output's value (`None` for an output given no value, `output_name:`).
pub fn output_binding(value: Option<&str>) -> Result<OutputBinding, BadBinding> {
    let Some(value) = value else {
        return Ok(OutputBinding::Own);
    };
    let Some(inner) = whole_expression(value) else {
        return Ok(OutputBinding::Own);
    };
    match inner.split('.').collect::<Vec<_>>().as_slice() {
        ["parent", "outputs", name] if name_ok(name) => {
            Ok(OutputBinding::ParentOutput(name.to_string()))
        }
        _ => Err(BadBinding {
            written: value.to_string(),
            help: "a step's output can only be promoted: `${{parent.outputs.<name>}}`".into(),
        }),
    }
}

/// Replaces `${{name}}` (the job's name, Azure's one run-time expression in paths) in an
/// output path.
pub fn expand_name(path: &str, job_name: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find("${{") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        match after.find("}}") {
            Some(end) if after[..end].trim() == "name" => {
                out.push_str(job_name);
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str("${{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_are_read_as_azure_writes_them() {
        assert_eq!(
            input_binding("${{parent.inputs.hello_string_top_level_input}}"),
            Ok(InputBinding::ParentInput(
                "hello_string_top_level_input".into()
            ))
        );
        assert_eq!(
            input_binding(" ${{ parent.jobs.b.outputs.world_output }} "),
            Ok(InputBinding::StepOutput {
                step: "b".into(),
                output: "world_output".into()
            })
        );
        assert_eq!(input_binding("hello"), Ok(InputBinding::Value));
        assert_eq!(input_binding("./data"), Ok(InputBinding::Value));
        assert_eq!(
            output_binding(Some("${{parent.outputs.final_pipeline_output}}")),
            Ok(OutputBinding::ParentOutput("final_pipeline_output".into()))
        );
        assert_eq!(output_binding(None), Ok(OutputBinding::Own));
    }

    #[test]
    fn a_binding_that_cannot_be_followed_says_what_to_write() {
        let e = input_binding("${{inputs.x}}").unwrap_err();
        assert!(e.help.contains("${{parent.inputs.x}}"), "{}", e.help);
        let e = input_binding("${{parent.jobs.b.output.y}}").unwrap_err();
        assert!(e.help.contains("parent.jobs.<step>.outputs"), "{}", e.help);
        let e = input_binding("data/${{parent.inputs.x}}").unwrap_err();
        assert!(e.help.contains("whole value"), "{}", e.help);
        let e = output_binding(Some("${{parent.jobs.a.outputs.y}}")).unwrap_err();
        assert!(e.help.contains("parent.outputs"), "{}", e.help);
    }

    #[test]
    fn the_job_name_is_put_into_paths() {
        assert_eq!(
            expand_name(
                "azureml://datastores/workspaceblobstore/paths/${{name}}/hello_world.txt",
                "tidy_kettle_1"
            ),
            "azureml://datastores/workspaceblobstore/paths/tidy_kettle_1/hello_world.txt"
        );
        assert_eq!(expand_name("${{ name }}/${{other}}", "n"), "n/${{other}}");
        assert_eq!(expand_name("${{name", "n"), "${{name");
    }
}
