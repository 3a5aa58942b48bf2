//! MLflow's proxied artifact API (`/api/2.0/mlflow-artifacts/artifacts/...`): uploads land
//! in the run's folder, downloads and listings read it. Uploads stream to disk.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::AppState;
use super::mlflow_api::Caller;
use crate::tracking::MlflowError;
use crate::tracking::artifacts::{self, ArtifactTarget};

type MlResult<T> = Result<T, MlflowError>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    const ROOT: &str = "/api/2.0/mlflow-artifacts/artifacts";
    Router::new().route(ROOT, get(list)).route(
        &format!("{ROOT}/{{*path}}"),
        get(download).put(upload).delete(refuse_delete),
    )
}

/// The folder an artifact path lives in, and the path below it; `writing` checks the
/// caller may write there.
fn resolve(
    s: &AppState,
    caller: &Caller,
    path: &str,
    writing: bool,
) -> MlResult<(PathBuf, String)> {
    match artifacts::parse(path)? {
        ArtifactTarget::Run { run_id, path } => {
            s.runner.store.run(&run_id)?;
            if writing {
                caller.may_write(s, &run_id)?;
                if artifacts::reserved(path.split('/').next().unwrap_or("")) {
                    return Err(MlflowError::denied(format!(
                        "'{path}' is where tug keeps the run's own logs; log artifacts under another folder"
                    )));
                }
            }
            Ok((s.runner.ws.run_dir(&run_id), path))
        }
        ArtifactTarget::Model { model_id, path } => {
            let m = s.runner.store.logged_model(&model_id)?;
            match &m.source_run_id {
                Some(run) => {
                    if writing {
                        caller.may_write(s, run)?;
                    }
                    Ok((s.runner.ws.run_dir(run).join(&m.artifact_path), path))
                }
                None => {
                    if writing && *caller != Caller::Workspace {
                        return Err(MlflowError::denied(
                            "a job's token cannot write a logged model that belongs to no run",
                        ));
                    }
                    Ok((
                        s.runner
                            .ws
                            .artifacts()
                            .join("mlflow-models")
                            .join(&model_id),
                        path,
                    ))
                }
            }
        }
    }
}

fn internal(doing: &str, e: std::io::Error) -> MlflowError {
    MlflowError::new(
        crate::tracking::ErrorCode::InternalError,
        format!("{doing}: {e}"),
    )
}

/// Creates `root/rel`'s parent folders and checks that nothing on the way (a symlink a
/// run left in its outputs) leads outside `root`.
fn parent_inside(root: &FsPath, rel: &str) -> MlResult<PathBuf> {
    let dest = root.join(rel);
    let parent = dest.parent().unwrap_or(root).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| internal("creating the artifact folder", e))?;
    let real_root = root
        .canonicalize()
        .map_err(|e| internal("reading the run folder", e))?;
    let real_parent = parent
        .canonicalize()
        .map_err(|e| internal("reading the artifact folder", e))?;
    if !real_parent.starts_with(&real_root) {
        return Err(MlflowError::invalid(format!(
            "artifact path '{rel}' leads outside the run's folder"
        )));
    }
    Ok(dest)
}

async fn upload(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<String>,
    body: Body,
) -> MlResult<Json<Value>> {
    let (root, rel) = resolve(&s, &caller, &path, true)?;
    if rel.is_empty() {
        return Err(MlflowError::invalid(
            "an upload names a file below the artifact root",
        ));
    }
    let (root2, rel2) = (root.clone(), rel.clone());
    let dest = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&root2).map_err(|e| internal("creating the run folder", e))?;
        parent_inside(&root2, &rel2)
    })
    .await
    .map_err(|e| internal("upload", std::io::Error::other(e)))??;
    if dest.is_dir() {
        return Err(MlflowError::invalid(format!(
            "artifact '{rel}' is a folder; upload files below it"
        )));
    }
    // Written beside the destination and renamed over it: a reader never sees half a
    // file, and a symlink at the destination is replaced, never followed.
    let tmp = dest.with_file_name(format!(
        ".{}.upload-{}",
        dest.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("artifact"),
        crate::workspace::random_hex(4)
    ));
    let result = async {
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| internal("writing the artifact", e))?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                MlflowError::invalid(format!("the upload of '{rel}' broke off: {e}"))
            })?;
            file.write_all(&chunk)
                .await
                .map_err(|e| internal("writing the artifact", e))?;
        }
        file.flush()
            .await
            .map_err(|e| internal("writing the artifact", e))?;
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(|e| internal("storing the artifact", e))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result?;
    Ok(Json(json!({})))
}

async fn download(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<String>,
) -> MlResult<Response> {
    let (root, rel) = resolve(&s, &caller, &path, false)?;
    let file = root.join(&rel);
    let meta = std::fs::symlink_metadata(&file)
        .ok()
        .filter(|m| m.is_file());
    if meta.is_none() {
        return Err(MlflowError::missing(format!(
            "no artifact file '{rel}' here"
        )));
    }
    let f = tokio::fs::File::open(&file)
        .await
        .map_err(|e| internal("reading the artifact", e))?;
    let stream = tokio_util::io::ReaderStream::new(f);
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(serde::Deserialize)]
struct ListQuery {
    path: Option<String>,
}

async fn list(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> MlResult<Json<Value>> {
    let path = q.path.unwrap_or_default();
    let (root, rel) = resolve(&s, &caller, &path, false)?;
    let dir = root.join(&rel);
    let mut files = Vec::new();
    if let Ok(meta) = std::fs::symlink_metadata(&dir) {
        if meta.is_file() {
            // MLflow's server lists a file as itself.
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            files.push(json!({"path": name, "is_dir": false, "file_size": meta.len()}));
        } else if meta.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&dir)
                .map_err(|e| internal("listing the artifacts", e))?
                .filter_map(Result::ok)
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.contains(".upload-") {
                    continue;
                }
                let Ok(m) = e.path().symlink_metadata() else {
                    continue;
                };
                if m.is_dir() {
                    files.push(json!({"path": name, "is_dir": true}));
                } else if m.is_file() {
                    files.push(json!({"path": name, "is_dir": false, "file_size": m.len()}));
                }
            }
        }
    }
    Ok(Json(json!({"files": files})))
}

async fn refuse_delete() -> MlflowError {
    MlflowError::denied(
        "tug keeps a run's artifacts with the run; delete the run's folder with the run instead",
    )
}
