//! Tests: parsing whole job, environment and conda files (literals, overrides, paths, errors).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

fn job(text: &str) -> CommandJob {
    parse_command_job(Path::new("/jobs/train/job.yml"), text, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn job_err(text: &str, overrides: &[(&str, &str)]) -> SpecError {
    match parse_command_job(Path::new("job.yml"), text, overrides) {
        Ok(j) => panic!("expected an error, parsed {j:?}"),
        Err(e) => e,
    }
}

fn rendered(job: &CommandJob, name: &str) -> Option<String> {
    match &job.inputs[name] {
        Input::Literal(l) => l.rendered(),
        Input::Data(_) => panic!("{name} is data"),
    }
}

const BASE: &str = "command: echo\nenvironment:\n  image: python:3.11-slim\n";

#[test]
fn literal_inputs_render_like_azure() {
    let j = job(&format!(
        "{BASE}inputs:\n  a: 1e-3\n  b: 1.0e-5\n  c: yes\n  d: 'yes'\n  e: Off\n  f: 0.001\n  g: 1.0\n  h: 1_000\n  i: 0x1F\n  j: \"rbf\"\n  k: 1e+20\n  l: 100000000000000000000.0\n  m: y\n  n: 0o17\n"
    ));
    let expect = [
        ("a", "1e-3"),
        ("b", "1e-05"),
        ("c", "True"),
        ("d", "yes"),
        ("e", "False"),
        ("f", "0.001"),
        ("g", "1.0"),
        ("h", "1000"),
        ("i", "31"),
        ("j", "rbf"),
        ("k", "1e+20"),
        ("l", "1e+20"),
        ("m", "y"),
        ("n", "0o17"),
    ];
    for (name, text) in expect {
        assert_eq!(rendered(&j, name).as_deref(), Some(text), "input {name}");
    }
}

#[test]
fn literal_mapping_and_flow_forms_use_yaml_11_too() {
    let j = job(&format!(
        "{BASE}inputs:\n  lr:\n    value: 1e-3\n  flag: {{value: on}}\n  seed:\n    type: integer\n    default: 7\n    optional: true\n  plain: {{type: string, default: 2e5}}\n"
    ));
    assert_eq!(rendered(&j, "lr").as_deref(), Some("1e-3"));
    assert_eq!(rendered(&j, "flag").as_deref(), Some("True"));
    assert_eq!(rendered(&j, "seed").as_deref(), Some("7"));
    assert_eq!(rendered(&j, "plain").as_deref(), Some("2e5"));
    let inline = job(&format!("{BASE}inputs: {{x: 1e-3, y: yes, z: 0.5}}\n"));
    assert_eq!(rendered(&inline, "x").as_deref(), Some("1e-3"));
    assert_eq!(rendered(&inline, "y").as_deref(), Some("True"));
    assert_eq!(rendered(&inline, "z").as_deref(), Some("0.5"));
}

#[test]
fn multiline_and_block_strings_stay_strings() {
    let j = job(&format!(
        "{BASE}inputs:\n  text: |\n    yes\n  folded: hello\n    world\n"
    ));
    assert_eq!(rendered(&j, "text").as_deref(), Some("yes\n"));
    assert_eq!(rendered(&j, "folded").as_deref(), Some("hello world"));
}

#[test]
fn environment_variables_and_tags_are_python_text() {
    let j = job(&format!(
        "{BASE}environment_variables:\n  A: on\n  B: 2\n  C: 0.50\n  D: '1e-3'\n  E: 1e-3\ntags:\n  gpu: no\n"
    ));
    let vars: Vec<(&str, &str)> = j
        .environment_variables
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        vars,
        [
            ("A", "True"),
            ("B", "2"),
            ("C", "0.5"),
            ("D", "1e-3"),
            ("E", "1e-3")
        ]
    );
    assert_eq!(j.tags["gpu"], "False");
}

#[test]
fn data_inputs_outputs_and_paths() {
    let j = job(
        "command: python t.py --d ${{inputs.d}} --f ${{inputs.f}} --o ${{outputs.o}}\ncode: ../src\nenvironment:\n  image: python:3.11-slim\n  conda_file: conda.yml\ninputs:\n  d:\n    path: file:./data\n  f:\n    type: URI_FILE\n    path: https://example.com/iris.csv\n    mode: Download\noutputs:\n  o:\n  m:\n    type: mlflow_model\n    mode: upload\n    path: azureml://datastores/workspaceblobstore/paths/${{name}}/model\n",
    );
    assert_eq!(
        j.code.as_ref().unwrap().local,
        Some(PathBuf::from("/jobs/train/../src"))
    );
    let Input::Data(d) = &j.inputs["d"] else {
        panic!()
    };
    assert_eq!(
        (d.input_type, d.mode),
        (InputType::UriFolder, InputMode::RoMount)
    );
    assert_eq!(
        d.path.as_ref().unwrap().local,
        Some(PathBuf::from("/jobs/train/./data"))
    );
    let Input::Data(f) = &j.inputs["f"] else {
        panic!()
    };
    assert_eq!(
        (f.input_type, f.mode),
        (InputType::UriFile, InputMode::Download)
    );
    assert!(!f.path.as_ref().unwrap().is_local());
    assert_eq!(j.outputs["o"], Output::default());
    assert_eq!(j.outputs["m"].mode, OutputMode::Upload);
    assert!(j.outputs["m"].path.as_ref().unwrap().contains("${{name}}"));
    let EnvironmentRef::Inline(env) = &j.environment else {
        panic!()
    };
    let EnvironmentSource::Image {
        conda_file: Some(CondaFile::Path(p)),
        ..
    } = &env.source
    else {
        panic!()
    };
    assert_eq!(p.local, Some(PathBuf::from("/jobs/train/conda.yml")));
    assert_eq!(j.compute, "local");
    assert_eq!(j.resources.instance_count, 1);
}

#[test]
fn environment_references_and_compute() {
    let j = job("command: echo\nenvironment: azureml:sklearn@latest\ncompute: azureml:gpu-box\n");
    assert_eq!(
        j.environment,
        EnvironmentRef::Registered {
            name: "sklearn".into(),
            version: AssetVersion::Latest
        }
    );
    assert_eq!(j.compute, "gpu-box");
    assert_eq!(
        EnvironmentRef::parse("azureml:x:2").unwrap().to_string(),
        "azureml:x:2"
    );
    let e = EnvironmentRef::parse("azureml:").unwrap_err();
    assert_eq!((e.location(), e.field()), (None, Some("environment")));
}

#[test]
fn render_a_parsed_command() {
    let j = job(
        "command: >-\n  python t.py --lr ${{inputs.lr}} --flag ${{ inputs.flag }}\n  $[[--seed ${{inputs.seed}}]] --out ${{outputs.model}}\nenvironment:\n  image: python:3.11-slim\ninputs:\n  lr: 1e-3\n  flag: true\n  seed:\n    type: integer\n    optional: true\noutputs:\n  model:\n",
    );
    let inputs: BTreeMap<String, String> = j
        .inputs
        .iter()
        .filter_map(|(k, v)| match v {
            Input::Literal(l) => l.rendered().map(|r| (k.clone(), r)),
            Input::Data(_) => None,
        })
        .collect();
    let outputs = BTreeMap::from([("model".to_string(), "/outputs/model".to_string())]);
    assert_eq!(
        render_command(&j.command, &inputs, &outputs).unwrap(),
        "python t.py --lr 1e-3 --flag True  --out /outputs/model"
    );
}

#[test]
fn overrides_change_values_and_name_themselves_in_errors() {
    let text = format!("{BASE}inputs:\n  lr: 0.1\n");
    let j = parse_command_job(
        Path::new("job.yml"),
        &text,
        &[("inputs.lr", "1e-3"), ("compute", "azureml:big")],
    )
    .unwrap();
    assert_eq!(rendered(&j, "lr").as_deref(), Some("1e-3"));
    assert_eq!(j.compute, "big");

    // Untouched literals keep their YAML 1.1 reading when other keys are overridden.
    let other = format!("{BASE}inputs:\n  lr: 1e-3\n  flag: yes\n");
    let j = parse_command_job(Path::new("job.yml"), &other, &[("display_name", "x")]).unwrap();
    assert_eq!(rendered(&j, "lr").as_deref(), Some("1e-3"));
    assert_eq!(rendered(&j, "flag").as_deref(), Some("True"));

    let e = job_err(&text, &[("resources.instance_count", "0")]);
    assert_eq!(
        e.origin(),
        &Origin::Override {
            key: "resources.instance_count".into()
        }
    );
    assert!(
        e.to_string()
            .starts_with("--set resources.instance_count: "),
        "{e}"
    );

    let e = job_err(&text, &[("comand", "echo")]);
    assert!(matches!(e, SpecError::UnknownField { .. }), "{e:?}");
    assert_eq!(
        e.origin(),
        &Origin::Override {
            key: "comand".into()
        }
    );
    assert!(e.to_string().contains("did you mean `command`?"), "{e}");

    let e = job_err(&text, &[("inputs.lr.mode", "download")]);
    assert!(e.to_string().starts_with("--set inputs.lr"), "{e}");
}

#[test]
fn with_overrides_file_errors_still_point_into_the_file() {
    let text = format!("{BASE}limits:\n  timeout: 2h\n");
    let e = job_err(&text, &[("inputs.lr", "0.1")]);
    assert_eq!(e.location(), Some((5, 12)));
    assert_eq!(e.field(), Some("limits.timeout"));
}

#[test]
fn command_reference_errors() {
    // An input without a value is fine until the command uses it.
    job(&format!("{BASE}inputs:\n  lr:\n"));
    let e = job_err(
        "command: echo ${{inputs.lr}}\nenvironment: azureml:e:1\ninputs:\n  lr:\n",
        &[],
    );
    assert!(e.to_string().contains("has no value"), "{e}");
    let e = job_err(
        "command: echo ${{inputs.seed}}\nenvironment: azureml:e:1\ninputs:\n  seed:\n    type: integer\n    optional: true\n",
        &[],
    );
    assert!(e.to_string().contains("wrap the part that uses it"), "{e}");
    let e = job_err("command: echo ${{name}}\nenvironment: azureml:e:1\n", &[]);
    assert!(e.to_string().contains("output paths only"), "{e}");
    let e = job_err("command: echo $[[--x]]\nenvironment: azureml:e:1\n", &[]);
    assert!(e.to_string().contains("contains no"), "{e}");
    let e = job_err("command: ''\nenvironment: azureml:e:1\n", &[]);
    assert_eq!(e.field(), Some("command"));
}

#[test]
fn errors_for_files_that_are_not_jobs() {
    let e = job_err("", &[]);
    assert!(e.to_string().contains("the file is empty"), "{e}");
    let e = job_err("image: python:3.11\n", &[]);
    assert!(
        e.to_string().contains("looks like an environment file"),
        "{e}"
    );
    let e = job_err(
        "command: a\nenvironment: azureml:e:1\n---\ncommand: b\n",
        &[],
    );
    assert!(matches!(e, SpecError::Syntax { .. }), "{e:?}");
    assert!(e.help().contains("one job"), "{e}");
}

#[test]
fn environment_files() {
    let env = parse_environment(
        Path::new("/envs/env.yml"),
        "name: x\nversion: 1.10\nbuild:\n  path: ctx\n",
        &[("description", "from --set")],
    )
    .unwrap();
    assert_eq!(env.version.as_deref(), Some("1.1"));
    assert_eq!(env.description.as_deref(), Some("from --set"));
    let EnvironmentSource::Build { build } = &env.source else {
        panic!()
    };
    assert_eq!(build.path.local, Some(PathBuf::from("/envs/ctx")));
    assert_eq!(build.dockerfile_path, "Dockerfile");
    assert_eq!(env.image(), None);

    let e = parse_environment(
        Path::new("env.yml"),
        "image: python\n",
        &[("os_type", "Windows")],
    )
    .unwrap_err();
    assert!(matches!(e, SpecError::Unsupported { .. }), "{e:?}");
    assert_eq!(
        e.origin(),
        &Origin::Override {
            key: "os_type".into()
        }
    );
}

#[test]
fn conda_files() {
    let plan = conda_pip_plan(
        Path::new("conda.yml"),
        "dependencies:\n- python=3.11\n- numpy\n",
    )
    .unwrap();
    assert_eq!(plan.python.as_deref(), Some("3.11"));
    assert_eq!(plan.pip_requirements, ["numpy"]);
    let e = conda_pip_plan(
        Path::new("conda.yml"),
        "dependencies:\n- python=3.11\n- pip:\n    mlflow: 1\n",
    )
    .unwrap_err();
    assert_eq!(e.field(), Some("dependencies[1].pip"), "{e}");
    assert_eq!(e.location(), Some((4, 5)), "{e}");
}

#[test]
fn parsed_jobs_serialize_and_read_back() {
    let text = "command: python t.py ${{inputs.lr}}\ncode: src\nenvironment:\n  image: python:3.11-slim\n  conda_file:\n    dependencies: [python=3.11, {pip: [numpy]}]\ninputs:\n  lr: 1e-3\n  d: {type: uri_file, path: x.csv}\noutputs:\n  o:\ndistribution:\n  type: pytorch\n  process_count_per_instance: 2\nresources:\n  docker_args: [--ipc=host]\n";
    let first = job(text);
    let json = serde_json::to_string(&first).unwrap();
    let again: CommandJob = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&again).unwrap(), json);
    // Local paths come back resolved (that is how they are written out).
    let Input::Data(d) = &again.inputs["d"] else {
        panic!()
    };
    assert_eq!(d.path.as_ref().unwrap().given, "/jobs/train/x.csv");
    assert_eq!(again.inputs["lr"], first.inputs["lr"]);
    assert_eq!(again.environment, first.environment);
}

#[test]
fn odd_but_valid_yaml_is_read() {
    let text = "%YAML 1.1\n---\n# comment\ncommand: &cmd \"python t.py --lr ${{inputs.lr}}\"   # trailing\nenvironment: {image: 'python:3.11-slim',\n  conda_file: {dependencies: [python=3.11]}}\ninputs:\n  lr: !!str 0.5\n  flag: !!str yes\n  \"quoted key\": 1\n  é: 2\ndisplay_name: *cmd\ntags: {a: 1, b: [1, 2]}\n...\n";
    let e = job_err(text, &[]);
    // `tags.b` is a list: the position comes from inside the flow mapping.
    assert_eq!(
        (e.field(), e.location()),
        (Some("tags.b"), Some((13, 17))),
        "{e}"
    );
    let fixed = text
        .replace("b: [1, 2]", "b: x")
        .replace("  \"quoted key\": 1\n  é: 2\n", "");
    let j = job(&fixed);
    assert_eq!(
        j.display_name.as_deref(),
        Some("python t.py --lr ${{inputs.lr}}")
    );
    assert_eq!(rendered(&j, "lr").as_deref(), Some("0.5"));
    assert_eq!(rendered(&j, "flag").as_deref(), Some("yes"));
    let bad_name = job_err(&text.replace("b: [1, 2]", "b: x"), &[]);
    assert_eq!(
        (bad_name.field(), bad_name.location()),
        (Some("inputs.quoted key"), Some((10, 3))),
        "{bad_name}"
    );
}
