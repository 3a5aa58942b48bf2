//! The Python worker files (`images/serving/`), embedded in the binary and written to a
//! private folder at startup, so a host run of `tug-infsrv` needs nothing installed but Python.
//!
//! Inside images tug passes `--shim-dir /opt/tug/serving` (the same files, copied at build time)
//! and nothing is written.

use std::path::{Path, PathBuf};

/// Every file under `images/serving/` except `tests/` and `*.md`, by path relative to it. A unit
/// test fails when a file there is missing from this list.
pub const SHIM_FILES: &[(&str, &[u8])] = &[
    (
        "shims/_tug_http.py",
        include_bytes!("../../images/serving/shims/_tug_http.py"),
    ),
    (
        "shims/azureml/__init__.py",
        include_bytes!("../../images/serving/shims/azureml/__init__.py"),
    ),
    (
        "shims/azureml/contrib/__init__.py",
        include_bytes!("../../images/serving/shims/azureml/contrib/__init__.py"),
    ),
    (
        "shims/azureml/contrib/services/__init__.py",
        include_bytes!("../../images/serving/shims/azureml/contrib/services/__init__.py"),
    ),
    (
        "shims/azureml/contrib/services/aml_request.py",
        include_bytes!("../../images/serving/shims/azureml/contrib/services/aml_request.py"),
    ),
    (
        "shims/azureml/contrib/services/aml_response.py",
        include_bytes!("../../images/serving/shims/azureml/contrib/services/aml_response.py"),
    ),
    (
        "shims/azureml_inference_server_http/__init__.py",
        include_bytes!("../../images/serving/shims/azureml_inference_server_http/__init__.py"),
    ),
    (
        "shims/azureml_inference_server_http/api/__init__.py",
        include_bytes!("../../images/serving/shims/azureml_inference_server_http/api/__init__.py"),
    ),
    (
        "shims/azureml_inference_server_http/api/aml_request.py",
        include_bytes!(
            "../../images/serving/shims/azureml_inference_server_http/api/aml_request.py"
        ),
    ),
    (
        "shims/azureml_inference_server_http/api/aml_response.py",
        include_bytes!(
            "../../images/serving/shims/azureml_inference_server_http/api/aml_response.py"
        ),
    ),
    (
        "shims/azureml_inference_server_http/log_config.py",
        include_bytes!("../../images/serving/shims/azureml_inference_server_http/log_config.py"),
    ),
    (
        "shims/inference_schema/__init__.py",
        include_bytes!("../../images/serving/shims/inference_schema/__init__.py"),
    ),
    (
        "shims/inference_schema/_constants.py",
        include_bytes!("../../images/serving/shims/inference_schema/_constants.py"),
    ),
    (
        "shims/inference_schema/parameter_types/__init__.py",
        include_bytes!("../../images/serving/shims/inference_schema/parameter_types/__init__.py"),
    ),
    (
        "shims/inference_schema/parameter_types/_constants.py",
        include_bytes!("../../images/serving/shims/inference_schema/parameter_types/_constants.py"),
    ),
    (
        "shims/inference_schema/parameter_types/_swagger_from_dtype.py",
        include_bytes!(
            "../../images/serving/shims/inference_schema/parameter_types/_swagger_from_dtype.py"
        ),
    ),
    (
        "shims/inference_schema/parameter_types/_util.py",
        include_bytes!("../../images/serving/shims/inference_schema/parameter_types/_util.py"),
    ),
    (
        "shims/inference_schema/parameter_types/abstract_parameter_type.py",
        include_bytes!(
            "../../images/serving/shims/inference_schema/parameter_types/abstract_parameter_type.py"
        ),
    ),
    (
        "shims/inference_schema/parameter_types/numpy_parameter_type.py",
        include_bytes!(
            "../../images/serving/shims/inference_schema/parameter_types/numpy_parameter_type.py"
        ),
    ),
    (
        "shims/inference_schema/parameter_types/pandas_parameter_type.py",
        include_bytes!(
            "../../images/serving/shims/inference_schema/parameter_types/pandas_parameter_type.py"
        ),
    ),
    (
        "shims/inference_schema/parameter_types/standard_py_parameter_type.py",
        include_bytes!(
            "../../images/serving/shims/inference_schema/parameter_types/standard_py_parameter_type.py"
        ),
    ),
    (
        "shims/inference_schema/schema_decorators.py",
        include_bytes!("../../images/serving/shims/inference_schema/schema_decorators.py"),
    ),
    (
        "shims/inference_schema/schema_util.py",
        include_bytes!("../../images/serving/shims/inference_schema/schema_util.py"),
    ),
    (
        "tug_worker.py",
        include_bytes!("../../images/serving/tug_worker.py"),
    ),
    (
        "tug_worker_handlers.py",
        include_bytes!("../../images/serving/tug_worker_handlers.py"),
    ),
    (
        "tug_worker_swagger.py",
        include_bytes!("../../images/serving/tug_worker_swagger.py"),
    ),
];

/// The worker script the front starts; the other files are what it imports.
pub const WORKER_SCRIPT: &str = "tug_worker.py";

/// Why the shim folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error(
        "--shim-dir {0}: no {WORKER_SCRIPT} there; point it at the folder holding tug's worker \
         files (images/serving), or omit it to use the copy embedded in tug-infsrv"
    )]
    NoWorkerScript(PathBuf),
    #[error(
        "cannot write the embedded worker files to {path}: {source}; set TMPDIR to a writable folder"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The folder workers run `tug_worker.py` from; a temporary one is deleted on drop.
pub struct ShimDir {
    path: PathBuf,
    _temporary: Option<tempfile::TempDir>,
}

impl ShimDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Uses `given` after checking it holds the worker script, or writes the embedded files to a
/// new private (0700) temporary folder.
pub fn prepare(given: Option<&Path>) -> Result<ShimDir, ShimError> {
    if let Some(dir) = given {
        if !dir.join(WORKER_SCRIPT).is_file() {
            return Err(ShimError::NoWorkerScript(dir.to_path_buf()));
        }
        return Ok(ShimDir {
            path: dir.to_path_buf(),
            _temporary: None,
        });
    }
    let write_error = |path: &Path, source| ShimError::Write {
        path: path.to_path_buf(),
        source,
    };
    let temporary = tempfile::Builder::new()
        .prefix("tug-infsrv-shims-")
        .tempdir()
        .map_err(|e| write_error(&std::env::temp_dir(), e))?;
    // Private: another user of the machine must not swap the code the workers run.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(temporary.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| write_error(temporary.path(), e))?;
    for (relative, bytes) in SHIM_FILES {
        let path = temporary.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| write_error(parent, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| write_error(&path, e))?;
    }
    Ok(ShimDir {
        path: temporary.path().to_path_buf(),
        _temporary: Some(temporary),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files the image and the binary must carry, found by walking the source folder.
    fn files_on_disk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() {
                if relative != "tests" && name != "__pycache__" {
                    files_on_disk(root, &path, out);
                }
            } else if !name.ends_with(".md") && !name.ends_with(".pyc") {
                out.push(relative);
            }
        }
    }

    #[test]
    fn every_worker_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/serving");
        let mut on_disk = Vec::new();
        files_on_disk(&root, &root, &mut on_disk);
        on_disk.sort();
        let embedded: Vec<&str> = SHIM_FILES.iter().map(|(path, _)| *path).collect();
        let missing: Vec<&String> = on_disk
            .iter()
            .filter(|f| !embedded.contains(&f.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "images/serving files not embedded in tug-infsrv; add them to SHIM_FILES in src/serving/shim.rs: {missing:?}"
        );
        assert!(embedded.contains(&WORKER_SCRIPT));
    }

    #[test]
    fn embedded_files_are_written_to_a_private_folder_and_removed_after() {
        let shims = prepare(None).unwrap();
        let root = shims.path().to_path_buf();
        for (relative, bytes) in SHIM_FILES {
            assert_eq!(
                std::fs::read(root.join(relative)).unwrap(),
                *bytes,
                "{relative}"
            );
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&root).unwrap().permissions().mode() & 0o077,
            0
        );
        drop(shims);
        assert!(!root.exists());
    }

    #[test]
    fn a_given_folder_must_hold_the_worker_script() {
        let empty = tempfile::tempdir().unwrap();
        let err = prepare(Some(empty.path())).err().unwrap();
        assert!(err.to_string().contains("no tug_worker.py there"), "{err}");
    }
}
