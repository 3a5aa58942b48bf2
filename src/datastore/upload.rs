//! Local data registered as a data asset is copied into the workspace datastore
//! (`workspaceblobstore`, the folder `.tug/datastores/workspaceblobstore/`) under
//! `LocalUpload/<content hash>/`, as Azure ML uploads it: the asset then keeps naming the
//! same bytes whatever happens to the original, and equal data is stored once.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::workspace::Workspace;

/// The workspace's default datastore, a folder on this host.
pub const WORKSPACE_DATASTORE: &str = "workspaceblobstore";

pub fn workspace_datastore(ws: &Workspace) -> PathBuf {
    ws.dir.join("datastores").join(WORKSPACE_DATASTORE)
}

/// Where a copy was put: the host path, and the same as an `azureml://` URI.
pub struct Uploaded {
    pub path: PathBuf,
    pub uri: String,
    /// sha256 over each file's relative path and content hash.
    pub content: String,
}

/// Copies the file or folder `src` into the workspace datastore (once per content).
pub fn upload_local(ws: &Workspace, src: &Path) -> std::io::Result<Uploaded> {
    // Links are followed: the copy holds the bytes they lead to, and the hash is taken
    // of the copy, so it is exactly what is stored.
    let src = std::fs::canonicalize(src)?;
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let uploads = workspace_datastore(ws).join("LocalUpload");
    let staging = uploads.join(format!(".staging-{}", crate::workspace::random_hex(6)));
    std::fs::create_dir_all(&staging)?;
    let staged = staging.join(&name);
    let files =
        match copy(&src, &staged).and_then(|_| crate::pipeline::fingerprint::hash_tree(&staged)) {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
    let mut h = Sha256::new();
    for (rel, sha) in &files {
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(sha.as_bytes());
        h.update([b'\n']);
    }
    let content = crate::workspace::hex(&h.finalize());
    let rel = format!("LocalUpload/{}/{name}", &content[..16]);
    let dest = workspace_datastore(ws).join(&rel);
    if !dest.exists() {
        std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
        std::fs::rename(&staged, &dest)?;
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(Uploaded {
        path: dest,
        uri: format!("azureml://datastores/{WORKSPACE_DATASTORE}/paths/{rel}"),
        content,
    })
}

/// Copies the file or folder `src` to `dest` (a folder's contents merged into it).
/// [`copy`], each file hard-linked where the filesystem allows (outputs are never written
/// again, so sharing their bytes is safe) and copied where it does not.
pub(crate) fn link_or_copy(src: &Path, dest: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(src)?;
    if meta.is_file() {
        if std::fs::hard_link(src, dest).is_err() {
            std::fs::copy(src, dest)?;
        }
        return Ok(());
    }
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        link_or_copy(&entry.path(), &dest.join(entry.file_name()))?;
    }
    Ok(())
}

pub(crate) fn copy(src: &Path, dest: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(src)?;
    if meta.is_file() {
        std::fs::copy(src, dest)?;
        return Ok(());
    }
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        copy(&entry.path(), &dest.join(entry.file_name()))?;
    }
    Ok(())
}
