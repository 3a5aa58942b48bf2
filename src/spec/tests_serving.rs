//! Tests: model, online endpoint and online deployment files (defaults, references, paths,
//! probes, case-insensitive enums, overrides, cross-field errors).

use std::path::{Path, PathBuf};

use super::*;

fn model(text: &str) -> ModelSpec {
    parse_model(Path::new("/models/m/model.yml"), text, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn model_err(text: &str) -> SpecError {
    match parse_model(Path::new("model.yml"), text, &[]) {
        Ok(m) => panic!("expected an error, parsed {m:?}"),
        Err(e) => e,
    }
}

fn endpoint(text: &str) -> OnlineEndpointSpec {
    parse_online_endpoint(Path::new("endpoint.yml"), text, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn endpoint_err(text: &str) -> SpecError {
    match parse_online_endpoint(Path::new("endpoint.yml"), text, &[]) {
        Ok(e) => panic!("expected an error, parsed {e:?}"),
        Err(e) => e,
    }
}

fn deployment(text: &str) -> OnlineDeploymentSpec {
    parse_online_deployment(Path::new("/ep/blue.yml"), text, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn deployment_err(text: &str) -> SpecError {
    match parse_online_deployment(Path::new("blue.yml"), text, &[]) {
        Ok(d) => panic!("expected an error, parsed {d:?}"),
        Err(e) => e,
    }
}

const DEP: &str = "name: blue\nendpoint_name: my-endpoint\nmodel:\n  path: ../model-1/model/\ncode_configuration:\n  code: ../model-1/onlinescoring/\n  scoring_script: score.py\nenvironment:\n  image: python:3.11-slim\n  conda_file: conda.yml\n";

#[test]
fn model_defaults_and_local_path() {
    let m = model("name: iris\npath: file:mlflow-model\ndescription: d\ntags:\n  best: yes\n");
    assert_eq!(m.name, "iris");
    assert_eq!(m.version, None);
    assert_eq!(m.model_type, ModelType::CustomModel);
    assert_eq!(m.tags["best"], "True");
    assert_eq!(
        m.path,
        ModelPath::Local {
            given: "file:mlflow-model".into(),
            path: PathBuf::from("/models/m/mlflow-model"),
        }
    );
    assert!(m.path.is_local() && m.path.is_available_locally());
    assert_eq!(m.path.to_string(), "file:mlflow-model");
}

#[test]
fn model_type_and_version() {
    let m = model(
        "name: iris\nversion: 3\npath: m\ntype: MLflow_Model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\nstage: Production\n",
    );
    assert_eq!(m.version.as_deref(), Some("3"));
    assert_eq!(m.model_type, ModelType::MlflowModel);
    assert_eq!(
        m.flavors["python_function"]["loader_module"],
        "mlflow.sklearn"
    );
    assert_eq!(m.stage.as_deref(), Some("Production"));
    assert_eq!(
        model("name: x\nversion: '12'\npath: m\ntype: TRITON_MODEL\n").model_type,
        ModelType::TritonModel
    );
    for bad in ["0", "v2", "1.5", "'007'", "latest"] {
        let e = model_err(&format!("name: iris\nversion: {bad}\npath: m\n"));
        assert_eq!(e.field(), Some("version"), "{bad}: {e}");
        assert_eq!(e.location(), Some((2, 10)), "{bad}: {e}");
        assert!(e.help().contains("whole number"), "{e}");
    }
    // YAML 1.1 reads a plain 007 as the number 7.
    assert_eq!(
        model("name: iris\nversion: 007\npath: m\n")
            .version
            .as_deref(),
        Some("7")
    );
    let e = model_err("name: iris\nversion: v2\npath: m\n");
    assert!(e.to_string().contains("text labels"), "{e}");
}

#[test]
fn model_overrides_like_the_azure_scripts() {
    let m = parse_model(
        Path::new("model.yml"),
        "name: azureml-infschema\nversion: 1\npath: models\n",
        &[("version", "42"), ("type", "mlflow_model")],
    )
    .unwrap();
    assert_eq!(m.version.as_deref(), Some("42"));
    assert_eq!(m.model_type, ModelType::MlflowModel);
    let e = parse_model(
        Path::new("model.yml"),
        "name: x\npath: m\n",
        &[("version", "abc")],
    )
    .unwrap_err();
    assert_eq!(
        e.origin(),
        &Origin::Override {
            key: "version".into()
        }
    );
}

#[test]
fn model_path_forms() {
    let base = Path::new("/base");
    let p = |s: &str| parse_model_path(s, base).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert_eq!(
        p("./model"),
        ModelPath::Local {
            given: "./model".into(),
            path: PathBuf::from("/base/./model")
        }
    );
    assert_eq!(
        p("file:///abs/model.pkl"),
        ModelPath::Local {
            given: "file:///abs/model.pkl".into(),
            path: PathBuf::from("/abs/model.pkl")
        }
    );
    assert_eq!(
        p("runs:/3f2a9c/model"),
        ModelPath::RunArtifact {
            run_id: "3f2a9c".into(),
            path: "model".into()
        }
    );
    assert_eq!(
        p("azureml://jobs/quiet_lamp_1/outputs/artifacts/paths/model/"),
        ModelPath::JobArtifact {
            job: "quiet_lamp_1".into(),
            path: "model/".into()
        }
    );
    assert_eq!(
        p("azureml://jobs/j1/outputs/model_out"),
        ModelPath::JobOutput {
            job: "j1".into(),
            output: "model_out".into(),
            path: None
        }
    );
    assert_eq!(
        p("azureml://jobs/j1/outputs/out/paths/sub/dir").to_string(),
        "azureml://jobs/j1/outputs/out/paths/sub/dir"
    );
    let ds = p("azureml://subscriptions/s/resourcegroups/g/workspaces/w/datastores/blob/paths/m/");
    assert_eq!(
        ds,
        ModelPath::Datastore {
            datastore: "blob".into(),
            path: "m/".into()
        }
    );
    assert!(!ds.is_available_locally());
    let url = p("https://example.com/model.pkl");
    assert_eq!(url, ModelPath::Url("https://example.com/model.pkl".into()));
    assert!(!url.is_available_locally());
    assert!(p("runs:/r/m").is_available_locally());
    for bad in [
        "",
        "runs:/",
        "runs:/abc",
        "azureml://jobs/j/outputs/artifacts",
        "azureml://jobs/j/model",
        "azureml://datastores/blob",
        "azureml://registries/r/models/m/versions/1",
        "azureml:my-model:1",
        "s3://bucket/model",
        "file:",
    ] {
        let e = parse_model_path(bad, base).unwrap_err();
        assert!(e.contains("\n  help: "), "{bad}: {e}");
    }
    assert!(
        parse_model_path("s3://b/m", base)
            .unwrap_err()
            .contains("scheme `s3:`")
    );
}

#[test]
fn model_file_errors() {
    let e = model_err("name: iris\npth: ./model\n");
    assert_eq!(
        (e.field(), e.location()),
        (Some("pth"), Some((2, 1))),
        "{e}"
    );
    assert!(e.to_string().contains("did you mean `path`?"), "{e}");
    let e = model_err("name: iris\n");
    assert_eq!(e.field(), Some("path"), "{e}");
    let e = model_err("path: m\n");
    assert_eq!(e.field(), Some("name"), "{e}");
    let e = model_err("name: my.model\npath: m\n");
    assert_eq!(
        (e.field(), e.location()),
        (Some("name"), Some((1, 7))),
        "{e}"
    );
    assert!(e.help().contains("my-model"), "{e}");
    let e = model_err("name: x\nlocal_path: m\n");
    assert_eq!(e.field(), Some("local_path"), "{e}");
    assert!(e.help().contains("`path:`"), "{e}");
    let e = model_err("name: x\ncommand: echo\n");
    assert!(e.to_string().contains("command job"), "{e}");
}

#[test]
fn endpoint_defaults_and_enums() {
    let e = endpoint("name: my-endpoint\n");
    assert_eq!(e.auth_mode, AuthMode::Key);
    assert!(e.traffic.is_empty() && e.mirror_traffic.is_empty());
    assert_eq!(e.compute_type(), EndpointComputeType::Managed);
    let k = endpoint(
        "name: my-endpoint\ncompute: azureml:kubernetescompute\nauth_mode: AML_Token\ntraffic:\n  blue: 90\n  green: 10\nmirror_traffic:\n  shadow: 20\nidentity:\n  type: System_Assigned\n",
    );
    assert_eq!(k.auth_mode, AuthMode::AmlToken);
    assert_eq!(k.compute.as_deref(), Some("kubernetescompute"));
    assert_eq!(k.compute_type(), EndpointComputeType::Kubernetes);
    assert_eq!(k.traffic_total(), 100);
    assert_eq!(k.mirror_traffic["shadow"], 20);
    assert_eq!(
        k.identity.unwrap().identity_type,
        EndpointIdentityType::SystemAssigned
    );
    assert_eq!(
        endpoint("name: abc\nauth_mode: aad_token\n").auth_mode,
        AuthMode::AadToken
    );
}

#[test]
fn endpoint_names() {
    for good in ["abc", "my-endpoint", "A1b2", &"a".repeat(32)] {
        assert!(valid_online_name(good), "{good}");
    }
    for bad in [
        "ab",
        "1abc",
        "abc-",
        "my_endpoint",
        "my.endpoint",
        &"a".repeat(33),
    ] {
        assert!(!valid_online_name(bad), "{bad}");
    }
    let e = endpoint_err("name: my_endpoint\n");
    assert_eq!(
        (e.field(), e.location()),
        (Some("name"), Some((1, 7))),
        "{e}"
    );
    assert!(e.to_string().contains("3 to 32 characters"), "{e}");
    assert!(e.help().contains("`my-endpoint`"), "{e}");
    let e = endpoint_err("name: ab\n");
    assert!(e.to_string().contains("2 characters long"), "{e}");
}

#[test]
fn endpoint_traffic_rules() {
    let e = endpoint_err("name: ep1\ntraffic:\n  blue: 80\n  green: 30\n");
    assert_eq!(
        (e.field(), e.location()),
        (Some("traffic"), Some((2, 1))),
        "{e}"
    );
    assert!(e.to_string().contains("add up to 110"), "{e}");
    let e = endpoint_err("name: ep1\ntraffic:\n  blue: 120\n");
    assert_eq!(e.field(), Some("traffic.blue"), "{e}");
    let e = endpoint_err("name: ep1\nmirror_traffic:\n  green: 60\n");
    assert!(e.help().contains("at most 50"), "{e}");
    let e = endpoint_err("name: ep1\nmirror_traffic:\n  green: 10\n  red: 10\n");
    assert_eq!(e.field(), Some("mirror_traffic.red"), "{e}");
    let e = endpoint_err("name: ep1\ntraffic:\n  green: 100\nmirror_traffic:\n  green: 10\n");
    assert!(e.to_string().contains("one or the other"), "{e}");
    // --set fixes a file, and errors in overridden values name the override.
    let text = "name: ep1\ntraffic:\n  blue: 80\n  green: 30\n";
    let fixed =
        parse_online_endpoint(Path::new("e.yml"), text, &[("traffic.green", "20")]).unwrap();
    assert_eq!(fixed.traffic_total(), 100);
    let e = parse_online_endpoint(Path::new("e.yml"), text, &[("traffic.green", "x")]).unwrap_err();
    assert_eq!(
        e.origin(),
        &Origin::Override {
            key: "traffic.green".into()
        }
    );
    let e = endpoint_err("name: ep1\ntraffic:\n  b: 100\n");
    assert_eq!(
        (e.field(), e.location()),
        (Some("traffic.b"), Some((3, 3))),
        "{e}"
    );
}

#[test]
fn endpoint_kind_specific_and_identity() {
    let e = endpoint_err("name: ep1\ncompute: azureml:k8s\npublic_network_access: disabled\n");
    assert_eq!(e.field(), Some("public_network_access"), "{e}");
    let e = endpoint_err("name: ep1\nidentity:\n  type: user_assigned\n");
    assert_eq!(e.field(), Some("identity.type"), "{e}");
    let e = endpoint_err("name: ep1\nauth_mode: keys\n");
    assert!(e.to_string().contains("did you mean `key`?"), "{e}");
    let e = endpoint_err("name: ep1\nendpoint_name: x\n");
    assert!(e.to_string().contains("online deployment"), "{e}");
}

#[test]
fn deployment_defaults_and_paths() {
    let d = deployment(DEP);
    assert_eq!(d.deployment_type, EndpointComputeType::Managed);
    assert_eq!(d.instance_count, 1);
    assert!(!d.app_insights_enabled);
    assert_eq!(d.scale_settings, ScaleSettings::Default);
    assert_eq!(d.request_settings, RequestSettings::default());
    assert_eq!(d.request_settings.request_timeout_ms, 5000);
    assert_eq!(d.request_settings.max_concurrent_requests_per_instance, 1);
    assert_eq!(d.liveness_probe, ProbeSettings::default());
    assert_eq!(
        (
            d.readiness_probe.initial_delay,
            d.readiness_probe.period,
            d.readiness_probe.timeout,
            d.readiness_probe.success_threshold,
            d.readiness_probe.failure_threshold
        ),
        (10, 10, 2, 1, 30)
    );
    let code = d.code_configuration.as_ref().unwrap();
    assert_eq!(
        code.script_path(),
        Some(PathBuf::from("/ep/../model-1/onlinescoring/score.py"))
    );
    let Some(ModelRef::Inline(m)) = &d.model else {
        panic!("{:?}", d.model)
    };
    assert_eq!(m.name, None);
    assert_eq!(m.model_type, ModelType::CustomModel);
    assert_eq!(
        m.path,
        ModelPath::Local {
            given: "../model-1/model/".into(),
            path: PathBuf::from("/ep/../model-1/model/")
        }
    );
    let Some(EnvironmentRef::Inline(env)) = &d.environment else {
        panic!()
    };
    let EnvironmentSource::Image {
        conda_file: Some(CondaFile::Path(c)),
        ..
    } = &env.source
    else {
        panic!()
    };
    assert_eq!(c.local, Some(PathBuf::from("/ep/conda.yml")));
    assert!(!d.is_no_code());
}

#[test]
fn deployment_probes_and_settings() {
    let d = deployment(&format!(
        "{DEP}liveness_probe:\n  period: 5\nreadiness_probe:\n  initial_delay: 0\n  failure_threshold: 3\nrequest_settings:\n  request_timeout_ms: 180000\n  max_concurrent_requests_per_instance: 4\napp_insights_enabled: yes\n"
    ));
    assert_eq!(d.liveness_probe.period, 5);
    assert_eq!(d.liveness_probe.timeout, 2);
    assert_eq!(d.readiness_probe.initial_delay, 0);
    assert_eq!(d.readiness_probe.failure_threshold, 3);
    assert_eq!(d.request_settings.request_timeout_ms, 180_000);
    assert_eq!(d.request_settings.max_queue_wait_ms, 500);
    assert!(d.app_insights_enabled);
    let e = deployment_err(&format!("{DEP}liveness_probe:\n  period: 0\n"));
    assert_eq!(
        (e.field(), e.location()),
        (Some("liveness_probe.period"), Some((12, 11))),
        "{e}"
    );
    let e = deployment_err(&format!("{DEP}readiness_probe:\n  perod: 5\n"));
    assert!(e.to_string().contains("did you mean `period`?"), "{e}");
    let e = deployment_err(&format!(
        "{DEP}request_settings:\n  request_timeout_ms: 200000\n"
    ));
    assert!(e.to_string().contains("1..=180000"), "{e}");
    // Kubernetes allows up to 300 s.
    let k = deployment(&format!(
        "{DEP}type: Kubernetes\nrequest_settings:\n  request_timeout_ms: 300000\nscale_settings:\n  type: Target_Utilization\n  max_instances: 3\nresources:\n  requests:\n    cpu: \"0.1\"\n    memory: 100Mi\n  limits:\n    nvidia.com/gpu: \"1\"\n"
    ));
    assert_eq!(k.deployment_type, EndpointComputeType::Kubernetes);
    assert_eq!(
        k.scale_settings,
        ScaleSettings::TargetUtilization {
            min_instances: 1,
            max_instances: 3,
            target_utilization_percentage: 70,
            polling_interval: 1
        }
    );
    let e = deployment_err(&format!(
        "{DEP}type: kubernetes\nresources:\n  limits:\n    nvidia.com/gpu: \"0.5\"\n"
    ));
    assert_eq!(
        (e.field(), e.location()),
        (Some("resources.limits.nvidia.com/gpu"), Some((14, 21))),
        "{e}"
    );
    let r = k.resources.unwrap();
    assert_eq!(r.requests.unwrap().cpu.as_deref(), Some("0.1"));
    assert_eq!(r.limits.unwrap().gpu.as_deref(), Some("1"));
}

#[test]
fn deployment_model_references() {
    let with_model = |m: &str| deployment(&DEP.replace("model:\n  path: ../model-1/model/\n", m));
    let d = with_model("model: azureml:my-model:1\n");
    assert_eq!(
        d.model,
        Some(ModelRef::Registered {
            name: "my-model".into(),
            version: AssetVersion::Version("1".into())
        })
    );
    let d = with_model("model: azureml:my-model@latest\n");
    assert_eq!(d.model.unwrap().to_string(), "azureml:my-model@latest");
    let d = with_model("model: azureml://registries/azureml/models/phi/versions/7\n");
    assert!(matches!(d.model, Some(ModelRef::Registry { .. })));
    let d =
        with_model("model:\n  name: sklearn-m\n  version: 2\n  path: m\n  type: mlflow_model\n");
    let Some(ModelRef::Inline(m)) = d.model else {
        panic!()
    };
    let spec = m.into_spec("anon");
    assert_eq!(
        (spec.name.as_str(), spec.version.as_deref()),
        ("sklearn-m", Some("2"))
    );
    assert_eq!(
        ModelRef::parse("azureml:m:1").unwrap().to_string(),
        "azureml:m:1"
    );
    for bad in [
        "azureml:m:v1",
        "azureml:m@prod",
        "azureml:",
        "my-model",
        "./model",
    ] {
        assert!(ModelRef::parse(bad).is_err(), "{bad}");
    }
    let e = ModelRef::parse("./model").unwrap_err();
    assert!(e.help().contains("path: ./model"), "{e}");
}

#[test]
fn deployment_environment_is_read_like_a_jobs() {
    let d = deployment(&DEP.replace(
        "environment:\n  image: python:3.11-slim\n  conda_file: conda.yml\n",
        "environment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest\n",
    ));
    assert!(matches!(
        d.environment,
        Some(EnvironmentRef::Registry { .. })
    ));
    let e =
        deployment_err(&DEP.replace("  image: python:3.11-slim\n", "  imgae: python:3.11-slim\n"));
    assert_eq!(e.field(), Some("environment.imgae"), "{e}");
    assert!(e.to_string().contains("did you mean `image`?"), "{e}");
}

#[test]
fn deployment_cross_field_errors() {
    // code without environment
    let e = deployment_err(&DEP.replace(
        "environment:\n  image: python:3.11-slim\n  conda_file: conda.yml\n",
        "",
    ));
    assert!(matches!(e, SpecError::MissingField { .. }), "{e:?}");
    assert_eq!(
        (e.field(), e.location()),
        (Some("environment"), Some((5, 1))),
        "{e}"
    );
    // no-code MLflow deployment is fine; a custom model is not
    let ncd = "name: sklearn-deployment\nendpoint_name: my-endpoint\nmodel:\n  path: m\n  type: mlflow_model\ninstance_type: Standard_DS3_v2\n";
    assert!(deployment(ncd).is_no_code());
    let e = deployment_err(&ncd.replace("mlflow_model", "custom_model"));
    assert!(e.to_string().contains("custom_model"), "{e}");
    // scoring script outside code
    for (script, why) in [
        ("/abs/score.py", "absolute"),
        ("../score.py", "leads out"),
        ("src/../..", "leads out"),
        (".", "folder itself"),
    ] {
        let e = deployment_err(&DEP.replace("score.py", script));
        assert_eq!(e.field(), Some("code_configuration.scoring_script"), "{e}");
        assert!(e.to_string().contains(why), "{script}: {e}");
    }
    deployment(&DEP.replace("score.py", "src/../score.py"));
    // kind-specific keys
    let e = deployment_err(&format!("{DEP}resources:\n  requests:\n    cpu: '1'\n"));
    assert_eq!(
        (e.field(), e.location()),
        (Some("resources"), Some((11, 1))),
        "{e}"
    );
    let e = deployment_err(&format!(
        "{DEP}type: kubernetes\negress_public_network_access: disabled\n"
    ));
    assert_eq!(e.field(), Some("egress_public_network_access"), "{e}");
    let e = deployment_err(&format!(
        "{DEP}scale_settings:\n  type: target_utilization\n"
    ));
    assert_eq!(e.field(), Some("scale_settings.type"), "{e}");
    let e = deployment_err(&format!(
        "{DEP}scale_settings:\n  type: default\n  min_instances: 2\n"
    ));
    assert_eq!(e.field(), Some("scale_settings.min_instances"), "{e}");
    let e = deployment_err(&format!("{DEP}model_mount_path: var/models\n"));
    assert_eq!(e.field(), Some("model_mount_path"), "{e}");
    let e = deployment_err(&format!("{DEP}instance_count: 0\n"));
    assert_eq!(e.field(), Some("instance_count"), "{e}");
}

#[test]
fn deployment_names_and_overrides() {
    let text = DEP.replace("my-endpoint", "<endpoint_name>");
    let e = deployment_err(&text);
    assert_eq!(e.field(), Some("endpoint_name"), "{e}");
    assert!(e.help().contains("--set endpoint_name="), "{e}");
    let d = parse_online_deployment(
        Path::new("d.yml"),
        &text,
        &[
            ("endpoint_name", "ep-7"),
            ("instance_count", "3"),
            ("model", "azureml:m:2"),
        ],
    )
    .unwrap();
    assert_eq!((d.endpoint_name.as_str(), d.instance_count), ("ep-7", 3));
    assert_eq!(d.model.unwrap().to_string(), "azureml:m:2");
    let e = parse_online_deployment(
        Path::new("d.yml"),
        DEP,
        &[("request_settings.request_timeout_ms", "0")],
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("--set request_settings.request_timeout_ms: "),
        "{e}"
    );
    let e = deployment_err(&DEP.replace("name: blue", "name: b"));
    assert_eq!(e.field(), Some("name"), "{e}");
}

#[test]
fn parsed_serving_files_serialize_and_read_back() {
    let d = deployment(&format!(
        "{DEP}type: kubernetes\nscale_settings:\n  type: target_utilization\n  max_instances: 2\n"
    ));
    let json = serde_json::to_string(&d).unwrap();
    let again: OnlineDeploymentSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&again).unwrap(), json);
    assert_eq!(again.scale_settings, d.scale_settings);
    let m = model("name: iris\nversion: 2\npath: runs:/abc/model\ntype: mlflow_model\n");
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), m);
    let e = endpoint("name: ep1\ntraffic:\n  blue: 100\n");
    let json = serde_json::to_string(&e).unwrap();
    assert_eq!(
        serde_json::from_str::<OnlineEndpointSpec>(&json).unwrap(),
        e
    );
}
