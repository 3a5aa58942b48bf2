//! Tests: reading sweep job files, telling job types apart, and rendering a trial's command.

use std::collections::BTreeMap;
use std::path::Path;

use super::{
    JobKind, SpecError, SweepJob, job_file_kind, parse_command_job, parse_sweep_job, render_param,
    render_trial_command,
};
use crate::sweep::{
    Distribution, EarlyTermination, Goal, ParamValue, Params, RandomRule, SamplingAlgorithm, Slack,
};

const PATH: &str = "/jobs/sweep.yml";

fn parse(text: &str) -> Result<SweepJob, SpecError> {
    parse_sweep_job(Path::new(PATH), text, &[])
}

fn sweep(extra: &str) -> String {
    format!(
        "type: sweep\ntrial:\n  command: python t.py --lr ${{{{search_space.lr}}}}\n  environment:\n    image: python:3.11-slim\nsampling_algorithm: random\nsearch_space:\n  lr: {{type: uniform, min_value: 0.01, max_value: 0.1}}\nobjective: {{goal: maximize, primary_metric: acc}}\n{extra}"
    )
}

fn err(text: &str) -> SpecError {
    parse(text).expect_err("should fail")
}

#[test]
fn reads_a_hello_sweep() {
    let job = parse(
        r#"$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  command: >-
    python hello.py --A ${{inputs.A}} --B ${{search_space.B}} --C ${{search_space.C}}
  code: src
  environment: azureml:AzureML-sklearn-1.5@latest
inputs:
  A: 0.5
compute: azureml:cpu-cluster
sampling_algorithm: random
search_space:
  B:
    type: choice
    values: ["hello", "world", "hello_world"]
  C:
    type: uniform
    min_value: 0.1
    max_value: 1.0
objective:
  goal: Minimize
  primary_metric: random_metric
limits:
  max_total_trials: 4
  max_concurrent_trials: 2
  timeout: 3000
display_name: hello-sweep
tags: {team: yes}
"#,
    )
    .unwrap();
    assert_eq!(job.kind, JobKind::Sweep);
    assert_eq!(job.compute, "cpu-cluster");
    assert_eq!(job.display_name.as_deref(), Some("hello-sweep"));
    assert_eq!(job.tags["team"], "True");
    assert_eq!(
        job.trial.code.as_ref().unwrap().local.as_deref(),
        Some(Path::new("/jobs/src"))
    );
    assert_eq!(
        job.sampling_algorithm,
        SamplingAlgorithm::Random {
            seed: None,
            rule: RandomRule::Random
        }
    );
    assert_eq!(
        job.search_space["B"],
        Distribution::Choice {
            values: vec!["hello".into(), "world".into(), "hello_world".into()]
        }
    );
    assert_eq!(
        job.search_space["C"],
        Distribution::Uniform {
            min_value: 0.1,
            max_value: 1.0
        }
    );
    assert_eq!(job.objective.goal, Goal::Minimize);
    assert_eq!(job.objective.primary_metric, "random_metric");
    assert_eq!(
        (
            job.limits.max_total_trials,
            job.limits.max_concurrent_trials,
            job.limits.timeout,
            job.limits.trial_timeout
        ),
        (4, 2, 3000, None)
    );
    assert!(job.early_termination.is_none());
    assert!(job.unused_dimensions().is_empty());
}

#[test]
fn limits_defaults_and_clamping() {
    let job = parse(&sweep("")).unwrap();
    assert_eq!(job.limits.max_total_trials, 1000);
    assert_eq!(job.limits.max_concurrent_trials, 100);
    assert_eq!(job.limits.timeout, 5_184_000);
    let job = parse(&sweep("limits: {max_total_trials: 20}")).unwrap();
    assert_eq!(job.limits.max_concurrent_trials, 20);
    let job = parse(&sweep(
        "limits: {max_total_trials: 3, max_concurrent_trials: 10}",
    ))
    .unwrap();
    assert_eq!(job.limits.max_concurrent_trials, 3);
    let job = parse(&sweep("limits:\n  trial_timeout: 60\n")).unwrap();
    assert_eq!(job.limits.trial_timeout, Some(60));
    let e = err(&sweep("limits: {max_total_trials: 1001}"));
    assert!(e.to_string().contains("Azure allows 1 to 1000"), "{e}");
    let e = err(&sweep("limits: {timeout: 2h}"));
    assert_eq!(e.field(), Some("limits.timeout"), "{e}");
}

#[test]
fn sampling_algorithm_forms() {
    let job = parse(&sweep("").replace("random", "Grid").replace(
        "lr: {type: uniform, min_value: 0.01, max_value: 0.1}",
        "lr: {type: choice, values: [0.01, 0.1]}",
    ))
    .unwrap();
    assert_eq!(job.sampling_algorithm, SamplingAlgorithm::Grid);
    let job = parse(&sweep("").replace(
        "sampling_algorithm: random",
        "sampling_algorithm: {type: RANDOM, seed: 3, rule: Sobol}",
    ))
    .unwrap();
    assert_eq!(
        job.sampling_algorithm,
        SamplingAlgorithm::Random {
            seed: Some(3),
            rule: RandomRule::Sobol
        }
    );
    let job = parse(&sweep("").replace(
        "sampling_algorithm: random",
        "sampling_algorithm:\n  type: bayesian",
    ))
    .unwrap();
    assert_eq!(job.sampling_algorithm, SamplingAlgorithm::Bayesian);
    let e = err(&sweep("").replace(
        "sampling_algorithm: random",
        "sampling_algorithm: {type: random, rule: halton}",
    ));
    assert_eq!(e.field(), Some("sampling_algorithm.rule"));
    let e = err(&sweep("").replace(
        "sampling_algorithm: random",
        "sampling_algorithm: {seed: 1}",
    ));
    assert!(
        e.to_string()
            .contains("missing required field `sampling_algorithm.type`"),
        "{e}"
    );
    let e = err(&sweep("").replace(
        "sampling_algorithm: random",
        "sampling_algorithm: {type: random, logbase: e}",
    ));
    assert!(matches!(e, SpecError::Unsupported { .. }), "{e}");
}

#[test]
fn bayesian_takes_every_distribution_but_no_early_termination() {
    let text = sweep("")
        .replace("sampling_algorithm: random", "sampling_algorithm: bayesian")
        .replace(
            "lr: {type: uniform, min_value: 0.01, max_value: 0.1}",
            "lr: {type: lognormal, mu: -3, sigma: 1}",
        );
    let job = parse(&text).unwrap();
    assert_eq!(
        job.search_space["lr"],
        Distribution::Lognormal {
            mu: -3.0,
            sigma: 1.0
        }
    );
    let e = err(&format!(
        "{text}early_termination: {{type: median_stopping}}\n"
    ));
    assert_eq!(e.field(), Some("early_termination"));
}

#[test]
fn choice_values_keep_their_yaml_1_1_types() {
    let job = parse(&sweep("").replace(
        "lr: {type: uniform, min_value: 0.01, max_value: 0.1}",
        "lr:\n    type: choice\n    values: [1e-3, 1.0e-3, \"2\", 2, yes, Off, 0x10, abc]",
    ))
    .unwrap();
    let Distribution::Choice { values } = &job.search_space["lr"] else {
        panic!("not a choice")
    };
    let expected: Vec<ParamValue> = vec![
        "1e-3".into(),
        0.001.into(),
        "2".into(),
        2.into(),
        true.into(),
        false.into(),
        16.into(),
        "abc".into(),
    ];
    assert_eq!(values, &expected);
}

#[test]
fn distributions_read_their_exact_parameters() {
    let job = parse(&sweep("").replace(
        "lr: {type: uniform, min_value: 0.01, max_value: 0.1}",
        "lr: {type: qloguniform, min_value: -9, max_value: -2, q: 0.0001}\n  n: {type: randint, upper: 5}\n  s: {type: qnormal, mu: 10, sigma: 2, q: 1}",
    ))
    .unwrap();
    assert_eq!(
        job.search_space["lr"],
        Distribution::Qloguniform {
            min_value: -9.0,
            max_value: -2.0,
            q: 0.0001
        }
    );
    assert_eq!(job.search_space["n"], Distribution::Randint { upper: 5 });
    assert_eq!(
        job.search_space["s"],
        Distribution::Qnormal {
            mu: 10.0,
            sigma: 2.0,
            q: 1.0
        }
    );
    assert_eq!(job.unused_dimensions(), ["n", "s"]);
    let e = err(&sweep("").replace(
        "lr: {type: uniform, min_value: 0.01, max_value: 0.1}",
        "lr: {type: quniform, min_value: 1, max_value: 5}",
    ));
    assert!(
        e.to_string()
            .contains("missing required field `search_space.lr.q`"),
        "{e}"
    );
    let e = err(&sweep("").replace(
        "lr: {type: uniform, min_value: 0.01, max_value: 0.1}",
        "lr: {type: randint, upper: 2.5}",
    ));
    assert!(e.to_string().contains("must be a whole number"), "{e}");
    let e = err(&sweep("").replace(
        "lr: {type: uniform, min_value: 0.01, max_value: 0.1}",
        "lr: {min_value: 0.01, max_value: 0.1}",
    ));
    assert_eq!(e.field(), Some("search_space.lr.type"), "{e}");
}

#[test]
fn early_termination_policies() {
    let job = parse(&sweep(
        "early_termination: {type: Bandit, slack_amount: 0.2, evaluation_interval: 0, delay_evaluation: 3}",
    ))
    .unwrap();
    let policy = job.early_termination.unwrap();
    assert_eq!(
        policy,
        EarlyTermination::Bandit {
            slack: Slack::Amount(0.2),
            evaluation_interval: 0,
            delay_evaluation: 3
        }
    );
    assert_eq!(policy.interval(), 1);
    let job = parse(&sweep(
        "early_termination: {type: truncation_selection, truncation_percentage: 25}",
    ))
    .unwrap();
    assert_eq!(
        job.early_termination,
        Some(EarlyTermination::TruncationSelection {
            truncation_percentage: 25,
            evaluation_interval: 0,
            delay_evaluation: 0
        })
    );
    let e = err(&sweep("early_termination: {type: truncation_selection}"));
    assert_eq!(e.field(), Some("early_termination.truncation_percentage"));
    let e = err(&sweep(
        "early_termination: {type: median_stopping, delay_evaluation: -1}",
    ));
    assert_eq!(e.field(), Some("early_termination.delay_evaluation"));
    let e = err(&sweep(
        "early_termination: {type: bandit, slack_factor: -0.1}",
    ));
    assert!(e.to_string().contains("cannot be negative"), "{e}");
    let e = err(&sweep("early_termination: {slack_factor: 0.1}"));
    assert_eq!(e.field(), Some("early_termination.type"));
}

#[test]
fn trial_command_references_are_checked() {
    // `${{inputs.x}}` naming a search-space entry is what the SDK rewrites: accepted.
    let job = parse(&sweep("").replace("search_space.lr", "inputs.lr")).unwrap();
    assert!(job.unused_dimensions().is_empty());
    let e = err(&sweep("").replace(
        "--lr ${{search_space.lr}}",
        "$[[--lr ${{search_space.lr}}]]",
    ));
    assert!(
        e.to_string()
            .contains("optional blocks may only contain optional inputs"),
        "{e}"
    );
    let e = err(&sweep("").replace("search_space.lr", "search_space.LR"));
    assert!(e.to_string().contains("did you mean `lr`?"), "{e}");
    assert_eq!(e.location(), Some((3, 29)));
    let e = err(&sweep("").replace("search_space.lr", "outputs.model"));
    assert!(e.to_string().contains("output that is not declared"), "{e}");
    let e = err(&sweep("").replace("search_space.lr", "parent.inputs.lr"));
    assert!(e.to_string().contains("is a binding"), "{e}");
}

#[test]
fn overrides_apply_before_validation() {
    let text = sweep("limits: {max_total_trials: 20}");
    let job = parse_sweep_job(
        Path::new(PATH),
        &text,
        &[
            ("limits.max_total_trials", "5"),
            ("objective.goal", "minimize"),
        ],
    )
    .unwrap();
    assert_eq!(job.limits.max_total_trials, 5);
    assert_eq!(job.objective.goal, Goal::Minimize);
    let e = parse_sweep_job(
        Path::new(PATH),
        &text,
        &[("search_space.lr.min_value", "1e-3")],
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("--set search_space.lr.min_value: "),
        "{e}"
    );
    assert!(e.to_string().contains("as text"), "{e}");
}

#[test]
fn job_file_kind_tells_the_reader() {
    let kind = |text: &str| job_file_kind(Path::new("j.yml"), text);
    assert_eq!(kind("command: echo").unwrap(), JobKind::Command);
    assert_eq!(
        kind("type: command\ncommand: echo").unwrap(),
        JobKind::Command
    );
    assert_eq!(kind("type: Sweep\ntrial: {}").unwrap(), JobKind::Sweep);
    assert_eq!(kind("type: pipeline\njobs: {}").unwrap(), JobKind::Pipeline);
    let e = kind("type: sweeep").unwrap_err();
    assert!(e.to_string().contains("did you mean `sweep`?"), "{e}");
    assert!(kind("- a list").is_err());
}

#[test]
fn each_reader_refuses_the_other_kind() {
    let e = parse_command_job(Path::new("s.yml"), &sweep(""), &[]).unwrap_err();
    assert_eq!(e.field(), Some("type"));
    assert!(e.to_string().contains("this is a sweep job"), "{e}");
    assert!(e.to_string().contains("tug job create"), "{e}");
    let e = parse("command: echo\nenvironment: {image: x}").unwrap_err();
    assert!(e.to_string().contains("not a sweep job"), "{e}");
    let e = parse("type: command\ncommand: echo").unwrap_err();
    assert_eq!(e.field(), Some("type"));
}

#[test]
fn trial_resources_fall_back_to_the_sweep_resources() {
    let job = parse(&sweep("resources: {instance_count: 2}")).unwrap();
    assert_eq!(job.trial_resources().instance_count, 2);
    let job = parse(&sweep("resources: {instance_count: 2}").replace(
        "  environment:",
        "  resources: {shm_size: 4g}\n  environment:",
    ))
    .unwrap();
    assert_eq!(job.trial_resources().shm_size.as_deref(), Some("4g"));
    assert_eq!(job.trial_resources().instance_count, 1);
    assert_eq!(
        parse(&sweep("")).unwrap().trial_resources().instance_count,
        1
    );
}

#[test]
fn a_sweep_job_round_trips_through_json() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/spec_corpus/good");
    for name in ["every-distribution.sweep.yml", "lightgbm-iris.sweep.yml"] {
        let path = Path::new(corpus).join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let job = parse_sweep_job(&path, &text, &[]).unwrap();
        let json = serde_json::to_string(&job).unwrap();
        // Local paths are stored resolved (as for command jobs), so compare the stored forms.
        let back: SweepJob = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json, "{name}");
        assert_eq!(back.search_space, job.search_space, "{name}");
        assert_eq!(back.early_termination, job.early_termination, "{name}");
    }
}

fn params(pairs: &[(&str, ParamValue)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn params_render_like_python_str() {
    assert_eq!(render_param(&"adam".into()), "adam");
    assert_eq!(render_param(&7.into()), "7");
    assert_eq!(render_param(&(-3).into()), "-3");
    assert_eq!(render_param(&0.001.into()), "0.001");
    assert_eq!(render_param(&0.00001.into()), "1e-05");
    assert_eq!(render_param(&1.0.into()), "1.0");
    assert_eq!(render_param(&1e20.into()), "1e+20");
    assert_eq!(render_param(&true.into()), "True");
    assert_eq!(render_param(&false.into()), "False");
}

#[test]
fn renders_a_trial_command() {
    let job = parse(
        "type: sweep\ntrial:\n  command: >-\n    python t.py --data ${{inputs.data}} --lr ${{search_space.lr}}\n    --opt ${{ search_space.opt }} --n ${{inputs.n}} --fast ${{search_space.fast}}\n    --x ${{inputs.x}} --out ${{outputs.model}}\n  environment: azureml:env:1\ninputs:\n  data: {type: uri_folder, path: ./d}\n  x: 1.0e-5\nsampling_algorithm: random\nsearch_space:\n  lr: {type: loguniform, min_value: -9, max_value: -2}\n  opt: {type: choice, values: [adam, sgd]}\n  n: {type: randint, upper: 10}\n  fast: {type: choice, values: [true, false]}\noutputs:\n  model:\nobjective: {goal: maximize, primary_metric: acc}\n",
    )
    .unwrap();
    let inputs: BTreeMap<String, String> = [
        ("data".to_string(), "/mnt/inputs/data".to_string()),
        ("x".to_string(), "1e-05".to_string()),
    ]
    .into();
    let outputs: BTreeMap<String, String> =
        [("model".to_string(), "/mnt/outputs/model".to_string())].into();
    let p = params(&[
        ("lr", 0.0001.into()),
        ("opt", "sgd".into()),
        ("n", 3.into()),
        ("fast", true.into()),
    ]);
    assert_eq!(
        render_trial_command(&job, &p, &inputs, &outputs).unwrap(),
        "python t.py --data /mnt/inputs/data --lr 0.0001 --opt sgd --n 3 --fast True --x 1e-05 --out /mnt/outputs/model"
    );
    let missing = params(&[("lr", 0.1.into()), ("opt", "sgd".into()), ("n", 3.into())]);
    let e = render_trial_command(&job, &missing, &inputs, &outputs).unwrap_err();
    assert!(
        e.to_string()
            .contains("no value for search-space entry `fast`"),
        "{e}"
    );
    let mut extra = p.clone();
    extra.insert("momentum".into(), 0.9.into());
    let e = render_trial_command(&job, &extra, &inputs, &outputs).unwrap_err();
    assert!(
        e.to_string()
            .contains("`momentum`, which is not in the search space"),
        "{e}"
    );
}

#[test]
fn a_trial_becomes_a_command_job_for_the_existing_path() {
    let job = parse(
        "type: sweep\ndisplay_name: s\ntrial:\n  command: python t.py --lr ${{search_space.lr}} --b ${{inputs.b}} --n ${{inputs.n}} --out ${{outputs.m}} $[[--o ${{inputs.o}}]]\n  environment: azureml:env:1\n  resources: {shm_size: 1g}\ninputs:\n  n: 4\n  o: {type: integer, optional: true}\noutputs:\n  m:\nsampling_algorithm: random\nsearch_space:\n  lr: {type: uniform, min_value: 0.01, max_value: 0.1}\n  b: {type: choice, values: [small, big]}\nobjective: {goal: maximize, primary_metric: acc}\nlimits: {max_total_trials: 3, trial_timeout: 600}\n",
    )
    .unwrap();
    let p = params(&[("lr", 0.05.into()), ("b", "big".into())]);
    let trial = job.trial_job(&p).unwrap();
    assert_eq!(trial.kind, JobKind::Command);
    assert_eq!(
        trial.command,
        "python t.py --lr 0.05 --b big --n ${{inputs.n}} --out ${{outputs.m}} $[[--o ${{inputs.o}}]]"
    );
    assert_eq!(trial.display_name.as_deref(), Some("s"));
    assert_eq!(trial.resources.shm_size.as_deref(), Some("1g"));
    assert_eq!(trial.limits.as_ref().and_then(|l| l.timeout), Some(600));
    assert!(trial.inputs.contains_key("n") && trial.outputs.contains_key("m"));
    // The existing rendering finishes the job, and agrees with render_trial_command.
    let inputs: BTreeMap<String, String> = [("n".to_string(), "4".to_string())].into();
    let outputs: BTreeMap<String, String> = [("m".to_string(), "/out/m".to_string())].into();
    let finished = super::render_command(&trial.command, &inputs, &outputs).unwrap();
    assert_eq!(
        finished,
        "python t.py --lr 0.05 --b big --n 4 --out /out/m "
    );
    assert_eq!(
        render_trial_command(&job, &p, &inputs, &outputs).unwrap(),
        finished
    );
    let e = job.trial_job(&params(&[("lr", 0.05.into())])).unwrap_err();
    assert!(
        e.to_string()
            .contains("no value for search-space entry `b`"),
        "{e}"
    );
}

#[test]
fn trials_run_where_trial_compute_says_else_where_the_sweep_does() {
    let p = params(&[("lr", 0.05.into())]);
    let plain = parse(&sweep("compute: azureml:cpu\n")).unwrap();
    assert_eq!(plain.trial_job(&p).unwrap().compute, "cpu");
    let split = parse(
        &sweep("compute: azureml:cpu\n").replace("trial:\n", "trial:\n  compute: azureml:k8s\n"),
    )
    .unwrap();
    assert_eq!(split.compute, "cpu");
    assert_eq!(split.trial_job(&p).unwrap().compute, "k8s");
    let set = parse_sweep_job(
        Path::new(PATH),
        &sweep(""),
        &[("trial.compute", "azureml:k8s")],
    )
    .unwrap();
    assert_eq!(set.trial_job(&p).unwrap().compute, "k8s");
}
