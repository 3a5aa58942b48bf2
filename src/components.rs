//! Registered components, client side: what `tug component create` captures (the file and
//! every local path it names: `code`, `additional_includes`, the environment's conda file
//! or build context), and how a pipeline that names `azureml:<name>:<version>` gets them
//! back: the snapshot unpacked once into `.tug/components/`, where the component's
//! relative paths resolve as they did where it was registered.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};

use crate::client::Client;
use crate::snapshot::Entry;
use crate::spec::{CommandComponent, CondaFile, EnvironmentRef, EnvironmentSource, SourcePath};
use crate::store::ComponentRecord;
use crate::workspace::Workspace;

/// A component's files, relative to the deepest folder holding all of them.
pub struct Bundle {
    pub entries: Vec<Entry>,
    /// The component file's path among them.
    pub file: String,
}

/// The local paths a component names (joined to its folder when it was read).
fn local_paths(component: &CommandComponent) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: &SourcePath| {
        if let Some(l) = &p.local {
            out.push(l.clone());
        }
    };
    if let Some(code) = &component.code {
        add(code);
    }
    for inc in &component.additional_includes {
        add(inc);
    }
    if let EnvironmentRef::Inline(env) = &component.environment {
        match &env.source {
            EnvironmentSource::Image {
                conda_file: Some(CondaFile::Path(p)),
                ..
            } => add(p),
            EnvironmentSource::Build { build } => add(&build.path),
            _ => {}
        }
    }
    out
}

/// `a/./b/../c` → `a/c`, without touching the disk.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn common_ancestor(paths: &[PathBuf]) -> PathBuf {
    let mut root = paths[0].clone();
    for p in &paths[1..] {
        while !p.starts_with(&root) {
            if !root.pop() {
                return PathBuf::new();
            }
        }
    }
    root
}

/// Reads the component file `file` and what it names into one bundle.
pub fn bundle(cwd: &Path, file: &Path, component: &CommandComponent) -> anyhow::Result<Bundle> {
    let abs = |p: &Path| clean(&cwd.join(p));
    let file_abs = abs(file);
    let folder = file_abs.parent().unwrap_or(Path::new("/")).to_path_buf();
    let named: Vec<PathBuf> = local_paths(component).iter().map(|p| abs(p)).collect();
    for p in &named {
        if !p.exists() {
            bail!(
                "{}: `{}` does not exist\n  help: the component names it (code, additional_includes or conda file); fix the path",
                file.display(),
                p.display()
            );
        }
    }
    let mut all = vec![folder];
    all.extend(named.iter().map(|p| {
        if p.is_dir() {
            p.clone()
        } else {
            p.parent().unwrap_or(Path::new("/")).to_path_buf()
        }
    }));
    let root = common_ancestor(&all);
    let rel = |p: &Path| -> String {
        p.strip_prefix(&root)
            .unwrap_or(p)
            .to_string_lossy()
            .replace('\\', "/")
    };
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let text = std::fs::read(&file_abs).with_context(|| format!("reading {}", file.display()))?;
    let file_rel = rel(&file_abs);
    entries.insert(
        file_rel.clone(),
        Entry {
            path: file_rel.clone(),
            data: Some(text),
            executable: false,
        },
    );
    for p in &named {
        if p.is_dir() {
            let prefix = rel(p);
            for e in crate::snapshot::read_folder(p)
                .with_context(|| format!("reading {}", p.display()))?
            {
                let path = if prefix.is_empty() {
                    e.path.clone()
                } else {
                    format!("{prefix}/{}", e.path)
                };
                entries.insert(path.clone(), Entry { path, ..e });
            }
        } else {
            let path = rel(p);
            let data = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            entries.insert(
                path.clone(),
                Entry {
                    path,
                    data: Some(data),
                    executable: false,
                },
            );
        }
    }
    Ok(Bundle {
        entries: entries.into_values().collect(),
        file: file_rel,
    })
}

/// The registered components a pipeline file names, found by a cheap look at its text
/// (the full reading comes after, with them at hand): `(name, version)`, `None` = latest.
pub fn referenced(text: &str) -> Vec<(String, Option<String>)> {
    let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return vec![];
    };
    let Some(jobs) = value.get("jobs").and_then(|j| j.as_mapping()) else {
        return vec![];
    };
    let mut out = Vec::new();
    for step in jobs.values() {
        if let Some(reference) = step.get("component").and_then(|c| c.as_str())
            && let Some(found) = crate::spec::registered_component(reference)
            && !out.contains(&found)
        {
            out.push(found);
        }
    }
    out
}

/// Registered components unpacked for a pipeline: `(name, version asked)` → the component
/// file in the cache and its text.
pub type Fetched = BTreeMap<(String, Option<String>), (PathBuf, String)>;

/// Asks the server for each component and unpacks its snapshot into the workspace's cache
/// (once per version and content).
pub async fn fetch(
    client: &Client,
    ws: &Workspace,
    wanted: &[(String, Option<String>)],
) -> anyhow::Result<Fetched> {
    let mut out = Fetched::new();
    for (name, version) in wanted {
        let path = crate::client::asset_path("components", name, version.as_deref());
        let rec: ComponentRecord = match client.get(&path).await {
            Ok(r) => r,
            // Not registered: the pipeline's reading says which step named it, and how to
            // fix it. Anything else is the server's trouble, said as it is.
            Err(crate::client::Error::Api { status: 404, .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let dir = ws.dir.join("components").join(&rec.name).join(format!(
            "{}-{}",
            rec.version,
            &rec.snapshot[..12.min(rec.snapshot.len())]
        ));
        if !done_marker(&dir).exists() {
            let tar = client
                .get_raw(&format!("/api/snapshots/{}", rec.snapshot))
                .await?
                .bytes()
                .await
                .context("downloading a component snapshot")?;
            unpack(&tar, &dir)?;
        }
        out.insert(
            (name.clone(), version.clone()),
            (dir.join(&rec.file), rec.text.clone()),
        );
    }
    Ok(out)
}

/// Writes a snapshot's files under `dir` (replacing a partial earlier attempt), refusing
/// any path that would leave it.
fn unpack(tar: &[u8], dir: &Path) -> anyhow::Result<()> {
    let tmp = sibling(dir, &format!(".tmp{}", crate::workspace::random_hex(4)));
    let entries = crate::snapshot::entries_from_tar(tar).context("reading a component snapshot")?;
    for e in entries {
        let rel = Path::new(&e.path);
        if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
            bail!(
                "a component snapshot holds `{}`, outside its folder",
                e.path
            );
        }
        let target = tmp.join(rel);
        match e.data {
            None => std::fs::create_dir_all(&target)?,
            Some(data) => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&target, data)?;
                if e.executable {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
                }
            }
        }
    }
    std::fs::create_dir_all(&tmp)?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).context("placing a component snapshot")?;
    // Beside the folder, not in it: the component's code may be the folder itself.
    std::fs::write(done_marker(dir), "")?;
    Ok(())
}

fn done_marker(dir: &Path) -> PathBuf {
    sibling(dir, ".complete")
}

/// `dir` with `suffix` appended to its last part (`1.0-ab` → `1.0-ab.complete`), unlike
/// `with_extension`, which would replace `.0-ab`.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_finds_registered_components_once() {
        let text = "type: pipeline\njobs:\n  a:\n    component: azureml:train:2\n  b:\n    component: azureml:train@latest\n  c:\n    component: ./local.yml\n  d:\n    component: azureml:train:2\n  e:\n    component: azureml:score\n";
        assert_eq!(
            referenced(text),
            [
                ("train".to_string(), Some("2".to_string())),
                ("train".to_string(), None),
                ("score".to_string(), None),
            ]
        );
        assert!(referenced("not: [valid").is_empty());
    }

    #[test]
    fn dotted_versions_get_their_own_marker() {
        assert_eq!(
            done_marker(Path::new("/c/train/1.0-abc")),
            PathBuf::from("/c/train/1.0-abc.complete")
        );
        assert_ne!(
            done_marker(Path::new("/c/train/1.0-abc")),
            done_marker(Path::new("/c/train/1.5-abc"))
        );
    }

    #[test]
    fn paths_are_cleaned_and_rooted_at_the_common_folder() {
        assert_eq!(clean(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        let root = common_ancestor(&[
            PathBuf::from("/w/comp/train"),
            PathBuf::from("/w/src"),
            PathBuf::from("/w/comp/train/env"),
        ]);
        assert_eq!(root, PathBuf::from("/w"));
    }
}
