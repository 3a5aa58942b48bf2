//! A completed run's named outputs in the workspace datastore: at Azure ML's default path
//! (`azureml://datastores/workspaceblobstore/paths/azureml/<run>/<output>/`, a link to the
//! run's folder, so later jobs can name it), and copied to the `path:` an output gave on a
//! datastore of this host.

use std::path::Path;

use super::model::JobSubmission;

/// Links and copies run `id`'s outputs; `store_root` is the workspace datastore's folder.
pub fn publish(
    store_root: &Path,
    run_dir: &Path,
    id: &str,
    sub: &JobSubmission,
) -> Result<(), String> {
    for (name, out) in &sub.outputs {
        let folder = run_dir.join("named-outputs").join(name);
        if !folder.exists() {
            continue;
        }
        let link = store_root.join("azureml").join(id).join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            if let Some(parent) = link.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("output `{name}`: creating {}: {e}", parent.display()))?;
            }
            std::os::unix::fs::symlink(&folder, &link)
                .map_err(|e| format!("output `{name}`: linking {}: {e}", link.display()))?;
        }
        let Some(dest) = &out.datastore_path else {
            continue;
        };
        let dest = std::path::PathBuf::from(dest.replace("${{name}}", id));
        let src = if out.is_file {
            folder.join(name)
        } else {
            folder.clone()
        };
        if !src.exists() {
            continue;
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("output `{name}`: creating {}: {e}", parent.display()))?;
        }
        crate::datastore::upload::copy(&src, &dest)
            .map_err(|e| format!("output `{name}`: copying it to {}: {e}", dest.display()))?;
    }
    Ok(())
}
