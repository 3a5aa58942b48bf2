//! Tests: command component files, Azure's own and broken ones.

use std::path::Path;

use super::*;

fn component(text: &str) -> CommandComponent {
    parse_component(Path::new("/repo/components/train.yml"), text, &[])
        .unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> SpecError {
    match parse_component(Path::new("train.yml"), text, &[]) {
        Ok(c) => panic!("expected an error, parsed {c:?}"),
        Err(e) => e,
    }
}

/// azureml-examples `cli/assets/component/train.yml`, as published.
const AZURE_TRAIN: &str =
    "$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: train_data_component_cli
display_name: train_data
description: A example train component
tags:
  author: azureml-sdk-team
type: command
inputs:
  training_data: 
    type: uri_folder
  max_epocs:
    type: integer
    optional: true
  learning_rate: 
    type: number
    default: 0.01
    optional: true
  learning_rate_schedule: 
    type: string
    default: time-based
    optional: true
outputs:
  model_output:
    type: uri_folder
code: ./train_src
environment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest
command: >-
  python train.py 
  --training_data ${{inputs.training_data}} 
  $[[--max_epocs ${{inputs.max_epocs}}]]
  $[[--learning_rate ${{inputs.learning_rate}}]]
  $[[--learning_rate_schedule ${{inputs.learning_rate_schedule}}]]
  --model_output ${{outputs.model_output}}
";

#[test]
fn azures_train_component_reads_with_optional_inputs_and_defaults() {
    let c = component(AZURE_TRAIN);
    assert_eq!(c.name, "train_data_component_cli");
    assert_eq!(c.version, None);
    assert!(c.is_deterministic);
    assert_eq!(c.tags["author"], "azureml-sdk-team");
    assert_eq!(
        c.code.as_ref().unwrap().local.as_deref(),
        Some(Path::new("/repo/components/./train_src"))
    );
    let lr = &c.inputs["learning_rate"];
    assert_eq!(lr.input_type, InputType::Number);
    assert_eq!(lr.default, Some(Literal::Float(0.01)));
    assert!(lr.optional);
    assert!(c.inputs["max_epocs"].optional);
    assert!(!c.inputs["training_data"].optional);
    assert_eq!(c.outputs["model_output"].output_type, InputType::UriFolder);
    assert_eq!(c.reference(), "train_data_component_cli");
}

#[test]
fn numbers_written_as_yaml_1_1_text_are_numbers_as_azure_reads_them() {
    // `pipeline_with_hyperparameter_sweep/train.yml`: `default: 1e-3` on a number input.
    let c = component(
        "name: train_model\nversion: 1\ninputs:\n  tol:\n    type: number\n    default: 1e-3\n  shrinking:\n    type: boolean\n    default: false\n  max_iter:\n    type: integer\n    default: -1\ncommand: python train.py --tol ${{inputs.tol}} --max_iter ${{inputs.max_iter}}\nenvironment: azureml:AzureML-sklearn-1.5@latest\n",
    );
    assert_eq!(c.version.as_deref(), Some("1"));
    assert_eq!(c.reference(), "train_model:1");
    assert_eq!(c.inputs["tol"].default, Some(Literal::Float(0.001)));
    assert_eq!(c.inputs["shrinking"].default, Some(Literal::Bool(false)));
    assert_eq!(c.inputs["max_iter"].default, Some(Literal::Int(-1)));
}

#[test]
fn a_data_default_is_the_components_own_path() {
    let c = parse_component(
        Path::new("/work/components/train.yml"),
        "name: t\ninputs:\n  data: {type: uri_folder, default: ./sample}\n  remote: {type: uri_file, default: 'https://example.com/x.csv'}\ncommand: ls ${{inputs.data}} ${{inputs.remote}}\nenvironment: azureml:AzureML-Minimal@latest\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.inputs["data"].default,
        Some(Literal::Str("/work/components/./sample".into()))
    );
    assert_eq!(
        c.inputs["remote"].default,
        Some(Literal::Str("https://example.com/x.csv".into())),
        "a URI stays as written"
    );
}

#[test]
fn ranges_and_choices_are_checked_where_declared() {
    let c = component(
        "name: t\ninputs:\n  lr: {type: number, min: 0, max: 1, default: 0.5}\n  kernel: {type: string, enum: [rbf, linear], default: rbf}\ncommand: echo ${{inputs.lr}} ${{inputs.kernel}}\nenvironment: azureml:AzureML-Minimal@latest\n",
    );
    let lr = &c.inputs["lr"];
    assert_eq!((lr.min, lr.max), (Some(0.0), Some(1.0)));
    assert!(lr.check_value(&Literal::Float(1.5)).is_err());
    assert!(lr.check_value(&Literal::Int(1)).is_ok());
    let (message, help) = c.inputs["kernel"]
        .check_value(&Literal::Str("poly".into()))
        .unwrap_err();
    assert_eq!(message, "`poly` is not one of the input's `enum` values");
    assert_eq!(help, "use one of `rbf`, `linear`");
}

struct Bad {
    text: &'static str,
    field: &'static str,
    line: usize,
    says: &'static str,
    fix: &'static str,
}

#[test]
fn bad_components_get_located_errors_with_a_fix() {
    const ENV: &str = "environment: azureml:AzureML-Minimal@latest\n";
    let cases = [
        Bad {
            text: "name: Train-Model\ncommand: echo\n",
            field: "name",
            line: 1,
            says: "`Train-Model` is not a valid component name",
            fix: "e.g. `train_model`",
        },
        Bad {
            text: "name: t\ninputs:\n  x: {type: string, min: 1}\ncommand: echo ${{inputs.x}}\n",
            field: "inputs.x.min",
            line: 3,
            says: "`min` only applies to `integer` and `number` inputs",
            fix: "remove `min`",
        },
        Bad {
            text: "name: t\ninputs:\n  x:\n    type: integer\n    enum: [1, 2]\ncommand: echo ${{inputs.x}}\n",
            field: "inputs.x.enum",
            line: 5,
            says: "`enum` only applies to `string` inputs",
            fix: "type: string",
        },
        Bad {
            text: "name: t\ninputs:\n  k:\n    type: string\n    enum: [a, b]\n    default: c\ncommand: echo ${{inputs.k}}\n",
            field: "inputs.k.default",
            line: 6,
            says: "`c` is not one of the input's `enum` values",
            fix: "use one of `a`, `b`",
        },
        Bad {
            text: "name: t\ninputs:\n  n:\n    type: integer\n    min: 1\n    default: 0\ncommand: echo ${{inputs.n}}\n",
            field: "inputs.n.default",
            line: 6,
            says: "0 is below the input's `min` (1)",
            fix: "at least 1",
        },
        Bad {
            text: "name: t\ninputs:\n  n:\n    type: integer\n    default: many\ncommand: echo ${{inputs.n}}\n",
            field: "inputs.n.default",
            line: 5,
            says: "is not a `integer` value",
            fix: "give a integer value",
        },
        Bad {
            text: "name: t\ninputs:\n  e: {type: integer, optional: true}\ncommand: train --epochs ${{inputs.e}}\n",
            field: "command",
            line: 4,
            says: "optional input `e` has no value here",
            fix: "$[[--e ${{inputs.e}}]]",
        },
        Bad {
            text: "name: t\ninputs:\n  d: {type: uri_folder}\ncommand: train $[[--d ${{inputs.d}}]]\n",
            field: "command",
            line: 4,
            says: "input `d` is not optional",
            fix: "optional: true",
        },
        Bad {
            text: "name: t\ninputs:\n  data: {type: uri_folder}\ncommand: train --data ${{inputs.dta}}\n",
            field: "command",
            line: 4,
            says: "did you mean `data`?",
            fix: "declare `dta` under `inputs:`",
        },
        Bad {
            text: "name: t\noutputs:\n  acc: {type: number}\ncommand: train\n",
            field: "outputs.acc.type",
            line: 3,
            says: "outputs are data",
            fix: "uri_folder",
        },
        Bad {
            text: "name: t\ninputs:\n  x: {default: 1}\ncommand: echo\n",
            field: "inputs.x.type",
            line: 3,
            says: "`inputs.x` has no `type`",
            fix: "`string`, `integer`, `number` or `boolean` for a value",
        },
        Bad {
            text: "name: t\ncommand: echo\nis_determinstic: false\n",
            field: "is_determinstic",
            line: 3,
            says: "is_determinstic",
            fix: "is_deterministic",
        },
        Bad {
            text: "name: t\ntype: pipeline\njobs:\n  a: {command: echo}\n",
            field: "jobs",
            line: 3,
            says: "pipeline component",
            fix: "type: pipeline",
        },
        Bad {
            text: "name: t\ntype: parallel\ncommand: echo\n",
            field: "type",
            line: 2,
            says: "`type: parallel` components are not supported",
            fix: "type: command",
        },
    ];
    for case in cases {
        let text = if case.text.contains("environment") || case.text.contains("jobs:") {
            case.text.to_string()
        } else {
            format!("{}{ENV}", case.text)
        };
        let e = err(&text);
        let shown = e.to_string();
        assert_eq!(e.field(), Some(case.field), "{shown}");
        assert_eq!(e.location().map(|(l, _)| l), Some(case.line), "{shown}");
        assert!(shown.contains(case.says), "{shown}");
        assert!(shown.contains(case.fix), "{shown}");
        assert!(shown.contains("train.yml"), "names the file: {shown}");
    }
}
