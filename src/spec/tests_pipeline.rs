//! Tests: pipeline job files, Azure's own (vendored under `tests/azureml_examples`) and
//! broken ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::pipeline::binding::{InputBinding, OutputBinding};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/azureml_examples/cli/");

/// Reads component files from disk, as the CLI does: the spec layer itself never does.
fn from_disk(source: &ComponentSource) -> Result<(PathBuf, String), String> {
    match source {
        ComponentSource::File(p) => std::fs::read_to_string(p)
            .map(|t| (p.clone(), t))
            .map_err(|e| e.to_string()),
        ComponentSource::Registered { name, .. } => Err(format!("no registry here for {name}")),
    }
}

fn example(rel: &str) -> Result<PipelineJob, SpecError> {
    let path = PathBuf::from(EXAMPLES).join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    parse_pipeline_job(&path, &text, &[], &mut from_disk)
}

fn literal(step: &PipelineStep, input: &str) -> String {
    match &step.job.inputs[input] {
        Input::Literal(l) => l.rendered().unwrap(),
        Input::Data(d) => panic!("{input} is data: {d:?}"),
    }
}

fn data_path(step: &PipelineStep, input: &str) -> String {
    match &step.job.inputs[input] {
        Input::Data(d) => d.path.as_ref().unwrap().given.clone(),
        Input::Literal(l) => panic!("{input} is a literal: {l:?}"),
    }
}

#[test]
fn hello_pipeline_abc_is_a_three_step_dag_on_the_default_compute() {
    let p = example("jobs/basics/hello-pipeline-abc.yml").unwrap();
    assert_eq!(p.display_name.as_deref(), Some("hello_pipeline_abc"));
    assert_eq!(p.settings.default_compute.as_deref(), Some("cpu-cluster"));
    assert!(!p.settings.continue_on_step_failure && !p.settings.force_rerun);
    assert_eq!(p.graph.order(), ["a", "b", "c"]);
    assert_eq!(p.graph.upstream("c").collect::<Vec<_>>(), ["b"]);
    let a = &p.steps["a"];
    assert_eq!(a.job.compute, "cpu-cluster");
    assert_eq!(
        literal(a, "hello_string"),
        "hello world",
        "the parent's input"
    );
    assert_eq!(
        p.steps["c"].bindings.inputs["world_input"],
        InputBinding::StepOutput {
            step: "b".into(),
            output: "world_output".into()
        }
    );
    assert_eq!(
        data_path(&p.steps["c"], "world_input"),
        "tug-step://b/outputs/world_output"
    );
    assert!(p.steps["b"].job.outputs.contains_key("world_output"));
}

#[test]
fn hello_pipeline_io_and_a_promoted_output_file() {
    let p = example("jobs/basics/hello-pipeline-io.yml").unwrap();
    assert_eq!(p.graph.order(), ["hello_job", "world_job"]);
    assert_eq!(p.steps["world_job"].job.compute, "cpu-cluster");
    let p = example("jobs/basics/hello-pipeline-customize-output-file.yml").unwrap();
    assert_eq!(p.outputs["output"].output_type, InputType::UriFile);
    assert_eq!(
        p.steps["hello_world"].bindings.outputs["output"],
        OutputBinding::ParentOutput("output".into())
    );
    assert_eq!(
        p.graph.promoted()["output"],
        ("hello_world".to_string(), "output".to_string())
    );
}

#[test]
fn the_three_component_pipeline_resolves_each_component_and_its_data() {
    let p = example("jobs/pipelines-with-components/basics/3b_pipeline_with_data/pipeline.yml")
        .unwrap();
    assert_eq!(
        p.graph.order(),
        ["component_a", "component_b", "component_c"]
    );
    let a = &p.steps["component_a"];
    assert_eq!(a.component.as_deref(), Some("component_a:1"));
    assert!(a.is_deterministic);
    assert!(
        a.job
            .command
            .starts_with("python hello.py --componentA_input")
    );
    let code = a.job.code.as_ref().unwrap().local.clone().unwrap();
    assert!(
        code.ends_with("3b_pipeline_with_data/./componentA_src"),
        "{code:?}"
    );
    let data = data_path(a, "component_a_input");
    assert_eq!(data, "./data");
    let Input::Data(d) = &a.job.inputs["component_a_input"] else {
        panic!()
    };
    assert!(
        d.path
            .as_ref()
            .unwrap()
            .local
            .as_ref()
            .unwrap()
            .ends_with("3b_pipeline_with_data/./data"),
        "joined to the pipeline's folder: {d:?}"
    );
    assert_eq!(
        data_path(&p.steps["component_b"], "component_b_input"),
        "tug-step://component_a/outputs/component_a_output"
    );
    assert_eq!(
        p.graph.promoted()["final_pipeline_output"],
        ("component_c".to_string(), "component_c_output".to_string())
    );
    assert_eq!(
        p.steps["component_c"].job.outputs["component_c_output"].output_type,
        InputType::UriFolder
    );
}

#[test]
fn azures_sweep_step_samples_its_trial_components_inputs() {
    let p =
        example("jobs/pipelines-with-components/pipeline_with_hyperparameter_sweep/pipeline.yml")
            .unwrap();
    assert_eq!(p.graph.order(), ["sweep_step", "predict_step"]);
    let sweep = &p.steps["sweep_step"];
    assert_eq!(sweep.component.as_deref(), Some("train_model:1"));
    let settings = sweep.sweep.as_ref().expect("a sweep step");
    assert_eq!(
        settings.search_space.keys().collect::<Vec<_>>(),
        ["c_value", "coef0", "kernel"]
    );
    assert_eq!(settings.limits.max_total_trials, 5);
    assert_eq!(settings.limits.max_concurrent_trials, 3);
    assert_eq!(settings.objective.primary_metric, "training_f1_score");
    // The sampled inputs are the sweep's to give; the rest are the step's or defaults.
    assert!(!sweep.job.inputs.contains_key("c_value"));
    assert!(
        sweep.job.command.contains("--C ${{search_space.c_value}}"),
        "{}",
        sweep.job.command
    );
    assert!(
        sweep
            .job
            .command
            .contains("--kernel ${{search_space.kernel}}")
    );
    assert_eq!(literal(sweep, "degree"), "3");
    assert_eq!(literal(sweep, "shrinking"), "False");
    assert_eq!(literal(sweep, "tol"), "0.001");
    assert_eq!(sweep.job.compute, "cpu-cluster");
    // A file given to the component's `uri_folder` input, `type: uri_file` stated: a file.
    let Input::Data(data) = &sweep.job.inputs["data"] else {
        panic!()
    };
    assert_eq!(data.input_type, InputType::UriFile);
    assert_eq!(
        sweep.job.outputs.keys().collect::<Vec<_>>(),
        ["model_output", "test_data"]
    );
    // The predict step reads the best trial's outputs.
    let predict = &p.steps["predict_step"];
    assert_eq!(
        predict.bindings.inputs["model"],
        InputBinding::StepOutput {
            step: "sweep_step".into(),
            output: "model_output".into(),
        }
    );
    assert!(predict.sweep.is_none());
}

#[test]
fn a_value_bound_from_the_pipelines_input_is_checked_against_the_component() {
    let head = "type: pipeline\ninputs:\n  rate: 3\n  half: '0.5'\n  raw: {type: uri_folder, path: ./raw}\njobs:\n  t:\n    component: ./train.yml\n    inputs:\n      data: ./d\n";
    let e = parse(&format!("{head}      lr: ${{{{parent.inputs.rate}}}}\n")).unwrap_err();
    assert_eq!(e.field(), Some("jobs.t.inputs.lr"));
    assert_eq!(e.location().map(|(l, _)| l), Some(11));
    assert!(
        e.to_string()
            .contains("through `${{parent.inputs.rate}}`: 3 is above the input's `max` (1)"),
        "{e}"
    );
    let e = parse(&format!("{head}      lr: ${{{{parent.inputs.raw}}}}\n")).unwrap_err();
    assert!(
        e.to_string()
            .contains("a `number` input takes a value, and the pipeline's input `raw` is data"),
        "{e}"
    );
    // Text that reads as the declared type is coerced to it, as a value in the step is.
    // A value written in the step is re-read with YAML 1.1's rules, as Azure's SDK reads it.
    let p = parse(&format!("{head}      lr: 1e-1\n      epochs: 0x10\n")).unwrap();
    assert_eq!(literal(&p.steps["t"], "lr"), "0.1");
    assert_eq!(literal(&p.steps["t"], "epochs"), "16");
    let p = parse(&format!("{head}      lr: ${{{{parent.inputs.half}}}}\n")).unwrap();
    assert_eq!(literal(&p.steps["t"], "lr"), "0.5");
    let Input::Literal(l) = &p.steps["t"].job.inputs["lr"] else {
        panic!()
    };
    assert_eq!(
        l.input_type,
        Some(InputType::Number),
        "the component's declaration"
    );
}

#[test]
fn a_binding_in_a_data_mappings_path_is_followed_and_its_mode_kept() {
    let p = parse(&format!(
        "type: pipeline\njobs:\n  a:\n    command: echo > ${{{{outputs.o}}}}/x\n{ENV}    outputs:\n      o:\n  b:\n    command: ls ${{{{inputs.x}}}}\n{ENV}    inputs:\n      x:\n        type: uri_folder\n        path: ${{{{parent.jobs.a.outputs.o}}}}\n        mode: download\n  t:\n    component: ./train.yml\n    inputs:\n      data:\n        path: ${{{{parent.jobs.a.outputs.o}}}}\n        mode: download\n"
    ))
    .unwrap();
    assert_eq!(p.graph.order(), ["a", "b", "t"]);
    for (step, input) in [("b", "x"), ("t", "data")] {
        assert_eq!(
            p.steps[step].bindings.inputs[input],
            InputBinding::StepOutput {
                step: "a".into(),
                output: "o".into()
            }
        );
        let Input::Data(d) = &p.steps[step].job.inputs[input] else {
            panic!()
        };
        assert_eq!(d.mode, InputMode::Download, "{step}");
        assert_eq!(data_path(&p.steps[step], input), step_output_uri("a", "o"));
    }
}

#[test]
fn a_pipeline_components_errors_are_located_in_its_own_file() {
    let e =
        parse("type: pipeline\njobs:\n  a:\n    type: pipeline\n    component: ./unwritten.yml\n")
            .unwrap_err();
    assert_eq!(e.field(), Some("outputs.model"));
    assert_eq!(e.location().map(|(l, _)| l), Some(4));
    let shown = e.to_string();
    assert!(
        shown.contains("unwritten.yml:4:")
            && shown.contains("no step of this pipeline component writes its output `model`"),
        "{shown}"
    );
    // Its steps flatten under the outer step's name, and its input reaches them.
    let p = parse("type: pipeline\njobs:\n  a:\n    type: pipeline\n    component: ./inner.yml\n    inputs:\n      lr: 0.5\n").unwrap();
    assert_eq!(p.graph.order(), ["a.t"]);
    assert_eq!(literal(&p.steps["a.t"], "lr"), "0.5");
}

#[test]
fn azures_pipeline_component_steps_are_flattened_with_their_bindings_followed() {
    let p = example(
        "jobs/pipelines-with-components/pipeline_with_pipeline_component/pipeline_with_train_eval_pipeline_component/pipeline.yml",
    )
    .unwrap();
    let order = p.graph.order();
    assert_eq!(order.len(), 7, "{order:?}");
    assert_eq!(order.last().map(String::as_str), Some("compare"));
    let train = &p.steps["train_and_evaluate_model1.train_job"];
    assert_eq!(train.component.as_deref(), Some("train_model"));
    // The outer pipeline's inputs, through the component's: values, data, and compute.
    assert_eq!(literal(train, "learning_rate"), "0.1");
    assert_eq!(literal(train, "max_epochs"), "20");
    assert_eq!(
        literal(train, "learning_rate_schedule"),
        "time-based",
        "its default"
    );
    assert_eq!(
        train.job.compute, "cpu-cluster",
        "compute: ${{parent.inputs.x}}"
    );
    assert!(
        data_path(train, "training_data").ends_with("/data"),
        "{}",
        data_path(train, "training_data")
    );
    let train2 = &p.steps["train_and_evaluate_model2.train_job"];
    assert_eq!(literal(train2, "learning_rate"), "0.01");
    // Inner steps read inner steps; the outer step reads the inner one that writes the output.
    assert_eq!(
        p.steps["train_and_evaluate_model1.score_job"]
            .bindings
            .inputs["model_input"],
        InputBinding::StepOutput {
            step: "train_and_evaluate_model1.train_job".into(),
            output: "model_output".into(),
        }
    );
    let compare = &p.steps["compare"];
    assert_eq!(
        compare.bindings.inputs["eval_result2"],
        InputBinding::StepOutput {
            step: "train_and_evaluate_model2.evaluate_job".into(),
            output: "eval_output".into(),
        }
    );
    assert_eq!(
        data_path(compare, "model1"),
        step_output_uri("train_and_evaluate_model1.train_job", "model_output")
    );
    assert_eq!(
        compare.bindings.outputs["best_model"],
        OutputBinding::ParentOutput("pipeline_job_best_model".into())
    );
    // A component output the outer pipeline does not promote is the inner step's own.
    assert_eq!(train.bindings.outputs["model_output"], OutputBinding::Own);
}

const ENV: &str = "    environment: azureml:AzureML-Minimal@latest\n";

/// Components the bad files below name, by file name.
fn components() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        (
            "train.yml",
            "name: train\nversion: 2\ninputs:\n  data: {type: uri_folder}\n  lr: {type: number, min: 0, max: 1, default: 0.1}\n  epochs: {type: integer, optional: true}\noutputs:\n  model: {type: uri_folder}\ncommand: python train.py --data ${{inputs.data}} --lr ${{inputs.lr}} $[[--epochs ${{inputs.epochs}}]] --out ${{outputs.model}}\nenvironment: azureml:AzureML-Minimal@latest\n",
        ),
        (
            "inner.yml",
            "type: pipeline\nname: inner\nversion: 1\ninputs:\n  lr: {type: number, default: 0.1}\noutputs:\n  model: {type: uri_folder}\njobs:\n  t:\n    component: ./train.yml\n    inputs:\n      data: ./d\n      lr: ${{parent.inputs.lr}}\n    outputs:\n      model: ${{parent.outputs.model}}\n",
        ),
        (
            "unwritten.yml",
            "type: pipeline\nname: unwritten\noutputs:\n  model: {type: uri_folder}\njobs:\n  t:\n    component: ./train.yml\n    inputs: {data: ./d}\n",
        ),
        (
            "fit.yml",
            "name: fit\nversion: 1\ninputs:\n  lr: {type: number}\n  depth: {type: integer, default: 3}\n  kind: {type: string, default: a}\noutputs:\n  model: {type: uri_folder}\ncommand: python fit.py --lr ${{inputs.lr}} --depth ${{inputs.depth}} --kind ${{inputs.kind}} --out ${{outputs.model}}\nenvironment: azureml:AzureML-Minimal@latest\n",
        ),
    ])
}

/// A sweep step over `fit.yml`, `search_space` and `rest` spliced in.
const SWEEP: &str = "  s:\n    type: sweep\n    trial: ./fit.yml\n    sampling_algorithm: random\n    objective: {goal: maximize, primary_metric: acc}\n";

fn parse(text: &str) -> Result<PipelineJob, SpecError> {
    let files = components();
    let mut resolve = |source: &ComponentSource| match source {
        ComponentSource::File(p) => {
            let name = p.file_name().unwrap().to_str().unwrap();
            files
                .get(name)
                .map(|t| (p.clone(), t.to_string()))
                .ok_or_else(|| "No such file or directory (os error 2)".to_string())
        }
        ComponentSource::Registered { name, .. } => Err(format!("no component `{name}`")),
    };
    parse_pipeline_job(Path::new("/p/pipeline.yml"), text, &[], &mut resolve)
}

#[test]
fn components_take_the_steps_values_checked_against_their_declarations() {
    let p = parse(&format!(
        "type: pipeline\ninputs:\n  raw: {{type: uri_folder, path: ./raw}}\njobs:\n  train:\n    component: ./train.yml\n    compute: azureml:gpu\n    inputs:\n      data: ${{{{parent.inputs.raw}}}}\n      lr: 5e-1\n  report:\n    command: cat ${{{{inputs.m}}}}/x\n{ENV}    inputs:\n      m: ${{{{parent.jobs.train.outputs.model}}}}\n"
    ))
    .unwrap();
    let t = &p.steps["train"];
    assert_eq!(t.component.as_deref(), Some("train:2"));
    assert_eq!(t.job.compute, "gpu");
    assert_eq!(
        literal(t, "lr"),
        "0.5",
        "YAML 1.1 text read as the declared number"
    );
    assert_eq!(
        data_path(t, "data"),
        "./raw",
        "the pipeline's own data input"
    );
    let Input::Literal(epochs) = &t.job.inputs["epochs"] else {
        panic!()
    };
    assert!(epochs.optional && epochs.rendered().is_none());
    assert_eq!(p.steps["report"].job.compute, "local");
    assert_eq!(p.graph.order(), ["train", "report"]);
}

struct Bad {
    jobs: &'static str,
    field: &'static str,
    line: usize,
    says: &'static str,
    fix: &'static str,
}

#[test]
fn bad_pipelines_get_located_errors_and_a_fix() {
    let env = ENV.trim_end();
    let cases = [
        Bad {
            jobs: "  a:\n    command: echo ${{inputs.x}}\nENV\n    inputs:\n      x: ${{parent.jobs.b.outputs.o}}\n  b:\n    command: echo ${{inputs.y}}\nENV\n    inputs:\n      y: ${{parent.jobs.a.outputs.o}}\n    outputs:\n      o:\n",
            field: "jobs.b.inputs.y",
            line: 12,
            says: "step `a` has no output `o`",
            fix: "declare `o` under the step's",
        },
        Bad {
            jobs: "  a:\n    command: echo ${{inputs.x}} ${{outputs.o}}\nENV\n    inputs:\n      x: ${{parent.jobs.b.outputs.o}}\n    outputs:\n      o:\n  b:\n    command: echo ${{inputs.y}} ${{outputs.o}}\nENV\n    inputs:\n      y: ${{parent.jobs.a.outputs.o}}\n    outputs:\n      o:\n",
            field: "jobs.a",
            line: 3,
            says: "the steps form a cycle: ",
            fix: "a step cannot wait for itself",
        },
        Bad {
            jobs: "  a:\n    command: echo ${{inputs.x}}\nENV\n    inputs:\n      x: ${{parent.jobs.trian.outputs.model}}\n  train:\n    component: ./train.yml\n    inputs: {data: ./d}\n",
            field: "jobs.a.inputs.x",
            line: 7,
            says: "the pipeline has no step `trian`",
            fix: "did you mean `train`?",
        },
        Bad {
            jobs: "  a:\n    command: echo ${{inputs.x}}\nENV\n    inputs:\n      x: ${{parent.inputs.nope}}\n",
            field: "jobs.a.inputs.x",
            line: 7,
            says: "the pipeline has no input `nope`",
            fix: "top-level `inputs:`",
        },
        Bad {
            jobs: "  a:\n    command: echo ${{inputs.x}}\nENV\n    inputs:\n      x: ${{inputs.y}}\n",
            field: "jobs.a.inputs.x",
            line: 7,
            says: "is not a binding tug can follow",
            fix: "`${{parent.inputs.y}}`",
        },
        Bad {
            jobs: "  a:\n    command: echo ${{inputs.x}}\nENV\n    inputs:\n      x: data/${{parent.inputs.y}}\n",
            field: "jobs.a.inputs.x",
            line: 7,
            says: "is not a binding tug can follow",
            fix: "the whole value",
        },
        Bad {
            jobs: "  a:\n    command: echo hi\nENV\n    outputs:\n      o: ${{parent.outputs.final}}\n",
            field: "jobs.a.outputs.o",
            line: 7,
            says: "the pipeline has no output `final`",
            fix: "top-level `outputs:`",
        },
        Bad {
            jobs: "  a:\n    command: echo hi\nENV\n    outputs:\n      o: somewhere\n",
            field: "jobs.a.outputs.o",
            line: 7,
            says: "`somewhere` is text",
            fix: "path: somewhere",
        },
        Bad {
            jobs: "  a:\n    environment_variables: {A: 1}\n",
            field: "jobs.a.command",
            line: 3,
            says: "step `a` has neither `command:` nor `component:`",
            fix: "component: ./file.yml",
        },
        Bad {
            jobs: "  a:\n    command: echo hi\n",
            field: "jobs.a.environment",
            line: 3,
            says: "has a `command:` but no `environment:`",
            fix: "environment: azureml:<name>@latest",
        },
        Bad {
            jobs: "  t:\n    component: ./train.yml\n    inputs:\n      lr: 0.1\n",
            field: "jobs.t.inputs.data",
            line: 3,
            says: "component `train:2` needs input `data`",
            fix: "${{parent.inputs.data}}",
        },
        Bad {
            jobs: "  t:\n    component: ./train.yml\n    inputs:\n      data: ./d\n      learning_rate: 0.1\n",
            field: "jobs.t.inputs.learning_rate",
            line: 7,
            says: "component `train:2` has no input `learning_rate`",
            fix: "its inputs are `data`, `epochs`, `lr`",
        },
        Bad {
            jobs: "  t:\n    component: ./train.yml\n    inputs:\n      data: ./d\n      lr: 3\n",
            field: "jobs.t.inputs.lr",
            line: 7,
            says: "3 is above the input's `max` (1)",
            fix: "at most 1",
        },
        Bad {
            jobs: "  t:\n    component: ./train.yml\n    inputs:\n      data: ./d\n      epochs: many\n",
            field: "jobs.t.inputs.epochs",
            line: 7,
            says: "is not a `integer` value",
            fix: "give a integer value",
        },
        Bad {
            jobs: "  t:\n    component: ./missing.yml\n",
            field: "jobs.t.component",
            line: 4,
            says: "component `./missing.yml` cannot be read: No such file",
            fix: "relative to this pipeline file",
        },
        Bad {
            jobs: "  t:\n    component: azureml:train@prod\n",
            field: "jobs.t.component",
            line: 4,
            says: "label `@prod`",
            fix: "azureml:<name>@latest",
        },
        Bad {
            jobs: "  t:\n    component: ./train.yml\n    command: python other.py\n    inputs: {data: ./d}\n",
            field: "jobs.t.command",
            line: 5,
            says: "`command` comes from the component `train:2`",
            fix: "remove `command` from the step",
        },
        Bad {
            jobs: "  t:\n    component: ./train.yml\n    inputs: {data: ./d}\n    outputs:\n      modle:\n",
            field: "jobs.t.outputs.modle",
            line: 7,
            says: "component `train:2` has no output `modle`",
            fix: "its outputs are `model`",
        },
        Bad {
            jobs: "  t:\n    component: ./train.yml\n    inputs:\n      data:\n",
            field: "jobs.t.inputs.data",
            line: 6,
            says: "input `data` of component `train:2` is required, and the step gives it no value",
            fix: "give `path:`",
        },
        Bad {
            jobs: "  a:\n    command: cat ${{inputs.x}}\nENV\n    inputs:\n      x: {type: uri_folder, path: tug-step://b/outputs/o}\n",
            field: "jobs.a.inputs.x",
            line: 7,
            says: "`tug-step://` paths are tug's own",
            fix: "${{parent.jobs.<step>.outputs.<name>}}",
        },
        Bad {
            jobs: "  1st:\n    command: echo\nENV\n",
            field: "jobs.1st",
            line: 3,
            says: "`1st` is not a valid step name",
            fix: "starts with a letter",
        },
        Bad {
            jobs: "  a:\n    type: parallel\n    command: echo\nENV\n",
            field: "jobs.a.type",
            line: 4,
            says: "`type: parallel` steps are not supported",
            fix: "command step",
        },
        Bad {
            jobs: "  a:\n    type: comand\n    command: echo\nENV\n",
            field: "jobs.a.type",
            line: 4,
            says: "did you mean `command`?",
            fix: "type: command",
        },
        Bad {
            jobs: "  a:\n    command: echo ${{inputs.x}}\nENV\n",
            field: "jobs.a.command",
            line: 4,
            says: "refers to an input that is not declared",
            fix: "declare it under `inputs:`",
        },
        Bad {
            jobs: "  a:\n    command: echo ${{parent.inputs.x}}\nENV\n",
            field: "jobs.a.command",
            line: 4,
            says: "is a binding, and a command uses its own inputs",
            fix: "x: ${{parent.inputs.x}}",
        },
        Bad {
            jobs: "SWEEP    search_space:\n      rate: {type: uniform, min_value: 0, max_value: 1}\n",
            field: "jobs.s.search_space.rate",
            line: 9,
            says: "the trial component `fit:1` has no input `rate` to sample",
            fix: "they are `depth`, `kind`, `lr`",
        },
        Bad {
            jobs: "SWEEP    search_space:\n      depth: {type: uniform, min_value: 1, max_value: 9}\n      lr: {type: choice, values: [0.1]}\n",
            field: "jobs.s.search_space.depth",
            line: 9,
            says: "input `depth` of `fit:1` is `integer`, but `search_space.depth` draws numbers with fractions",
            fix: "`type: randint`",
        },
        Bad {
            jobs: "SWEEP    search_space:\n      kind: {type: uniform, min_value: 1, max_value: 9}\n      lr: {type: choice, values: [0.1]}\n",
            field: "jobs.s.search_space.kind",
            line: 9,
            says: "a text input is sampled with `choice`",
            fix: "{type: choice, values: [...]}",
        },
        Bad {
            jobs: "  s:\n    type: sweep\n    trial: ./train.yml\n    inputs: {data: ./d}\n    sampling_algorithm: random\n    objective: {goal: maximize, primary_metric: acc}\n    search_space:\n      lr: {type: uniform, min_value: 0.5, max_value: 2}\n",
            field: "jobs.s.search_space.lr",
            line: 10,
            says: "`search_space.lr` draws values up to 2, above the input's `max` (1)",
            fix: "at or below 1",
        },
        Bad {
            jobs: "  s:\n    type: sweep\n    trial: ./train.yml\n    inputs: {data: ./d}\n    sampling_algorithm: random\n    objective: {goal: maximize, primary_metric: acc}\n    search_space:\n      lr: {type: quniform, min_value: 0, max_value: 1, q: 0.4}\n",
            field: "jobs.s.search_space.lr",
            line: 10,
            says: "draws values up to 1.2000000000000002, above the input's `max` (1)",
            fix: "at or below 1",
        },
        Bad {
            jobs: "SWEEP    search_space:\n      lr: {type: uniform, min_value: 0, max_value: 1}\n    inputs:\n      lr: 0.5\n",
            field: "jobs.s.inputs.lr",
            line: 11,
            says: "input `lr` is also in `search_space`",
            fix: "remove `lr` from the step's `inputs:`",
        },
        Bad {
            jobs: "SWEEP    search_space:\n      depth: {type: randint, upper: 9}\n",
            field: "jobs.s.inputs.lr",
            line: 3,
            says: "component `fit:1` needs input `lr`, and the step does not give it",
            fix: "add it under the step's `inputs:`",
        },
        Bad {
            jobs: "  s:\n    type: sweep\n    trial: ./fit.yml\n    sampling_algorithm: random\n    search_space:\n      lr: {type: uniform, min_value: 0, max_value: 1}\n",
            field: "jobs.s.objective",
            line: 4,
            says: "missing required field `objective`: a sweep step needs the metric to optimize",
            fix: "primary_metric: accuracy",
        },
        Bad {
            jobs: "  s:\n    type: sweep\n    component: ./fit.yml\n",
            field: "jobs.s.component",
            line: 5,
            says: "a sweep step runs its trial component; it has no `component` of its own",
            fix: "`trial: ./train.yml`",
        },
        Bad {
            jobs: "SWEEP    search_space:\n      lr: {type: uniform, min_value: 0, max_value: 1}\n    limits: {max_total_trials: 0}\n",
            field: "jobs.s.limits.max_total_trials",
            line: 10,
            says: "`limits.max_total_trials` is 0; Azure allows 1 to 1000",
            fix: "max_total_trials: 20",
        },
        Bad {
            jobs: "  a:\n    command: echo\nENV\n    search_space:\n      lr: {type: uniform, min_value: 0, max_value: 1}\n",
            field: "jobs.a.search_space",
            line: 6,
            says: "`search_space` belongs to a sweep step, and this is a command step",
            fix: "add `type: sweep`",
        },
        Bad {
            jobs: "  a:\n    command: echo\nENV\n    limits: {max_total_trials: 3}\n",
            field: "jobs.a.limits.max_total_trials",
            line: 6,
            says: "`limits.max_total_trials` is a sweep step's limit",
            fix: "keep only `limits.timeout`",
        },
        Bad {
            jobs: "  t:\n    component: ./train.yml\n    inputs: {data: ./d}\n    resources:\n      instance_count: 0\n",
            field: "jobs.t.resources.instance_count",
            line: 7,
            says: "`resources.instance_count` is 0",
            fix: "instance_count: 1",
        },
        Bad {
            jobs: "  a:\n    type: pipeline\n    component: ./train.yml\n",
            field: "jobs.a.type",
            line: 4,
            says: "`./train.yml` is a `type: command` component, and this step is `type: pipeline`",
            fix: "write `type: command` on the step",
        },
        Bad {
            jobs: "  a:\n    type: pipeline\n    component: ./inner.yml\n    inputs:\n      rate: 0.1\n",
            field: "jobs.a.inputs.rate",
            line: 7,
            says: "component `inner:1` has no input `rate`",
            fix: "its inputs are `lr`",
        },
        Bad {
            jobs: "  a:\n    comand: echo\nENV\n",
            field: "jobs.a.comand",
            line: 4,
            says: "unknown field `comand` in `jobs.a`; did you mean `command`?",
            fix: "command",
        },
    ];
    let mut wrong = Vec::new();
    for case in cases {
        let text = format!(
            "type: pipeline\njobs:\n{}",
            case.jobs.replace("ENV", env).replace("SWEEP", SWEEP)
        );
        let e = match parse(&text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e,
        };
        let shown = e.to_string();
        let ok = e.field() == Some(case.field)
            && e.location().map(|(l, _)| l) == Some(case.line)
            && shown.contains(case.says)
            && shown.contains(case.fix)
            && shown.contains("pipeline.yml");
        if !ok {
            wrong.push(format!(
                "expected {} line {} `{}` / `{}`, got:\n{shown}",
                case.field, case.line, case.says, case.fix
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    // The pipeline's own settings, and an empty one.
    for (text, field, says) in [
        ("type: pipeline\njobs: {}\n", "jobs", "`jobs` is empty"),
        (
            "type: pipeline\nsettings:\n  continue_on_step_failure: maybe\njobs:\n  a: {command: echo}\n",
            "settings.continue_on_step_failure",
            "continue_on_step_failure",
        ),
        (
            "type: pipeline\nsettings:\n  default_compute: azureml:a b\njobs:\n  a: {command: echo}\n",
            "settings.default_compute",
            "is not a compute target name",
        ),
    ] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.field(), Some(field), "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
}
