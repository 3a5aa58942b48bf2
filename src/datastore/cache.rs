//! The content-addressed cache of fetched data, under `.tug/cache/data/`:
//!
//! - `blobs/<sha256>`: each distinct content once, read-only;
//! - `sources/<sha256 of the canonical URI>.json`: what a URI was when last fetched (each
//!   object's size, ETag, Last-Modified and content hash), so the next fetch asks the store
//!   only whether that changed;
//! - `trees/<hash>/`: a fetched folder laid out with hard links to its blobs.
//!
//! Every file appears by rename from `tmp/`, so a fetch cut short leaves nothing half-written
//! where a reader looks.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Whether a URI names one file or a folder (a prefix of objects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Folder,
}

/// One object as the store described it and as the cache holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Relative to the folder (`""` for a file).
    pub path: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    pub sha256: String,
}

impl ObjectRecord {
    /// Whether the store's current description matches this record: same size and, where
    /// the store gives them, the same ETag (else the same Last-Modified). A store that
    /// gives neither is always fetched again.
    pub fn is_current(&self, size: u64, etag: Option<&str>, last_modified: Option<&str>) -> bool {
        if self.size != size {
            return false;
        }
        match (self.etag.as_deref(), etag) {
            (Some(a), Some(b)) => a == b,
            _ => match (self.last_modified.as_deref(), last_modified) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }
}

/// What a URI was when last fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub uri: String,
    pub kind: Kind,
    pub objects: Vec<ObjectRecord>,
    /// RFC 3339.
    pub fetched_at: String,
}

impl SourceRecord {
    /// The content hash of the whole source: the file's, or a folder's tree hash.
    pub fn content_hash(&self) -> String {
        match self.kind {
            Kind::File => self
                .objects
                .first()
                .map(|o| o.sha256.clone())
                .unwrap_or_default(),
            Kind::Folder => tree_hash(&self.objects),
        }
    }
}

/// A folder's hash: over its sorted (path, content hash) pairs. Pure.
pub fn tree_hash(objects: &[ObjectRecord]) -> String {
    let mut pairs: Vec<(&str, &str)> = objects
        .iter()
        .map(|o| (o.path.as_str(), o.sha256.as_str()))
        .collect();
    pairs.sort();
    let mut h = Sha256::new();
    for (path, sha) in pairs {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(sha.as_bytes());
        h.update([b'\n']);
    }
    crate::workspace::hex(&h.finalize())
}

/// What a prune removed (or would remove).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Paths under the cache folder.
    pub removed: Vec<String>,
    /// Bytes of the removed files (blobs and temp files; trees are links to blobs).
    pub bytes: u64,
}

/// The cache folder of one workspace.
#[derive(Debug, Clone)]
pub struct DataCache {
    root: PathBuf,
}

impl DataCache {
    pub fn new(root: PathBuf) -> DataCache {
        DataCache { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join(sha256)
    }

    fn source_path(&self, uri: &str) -> PathBuf {
        self.root.join("sources").join(format!(
            "{}.json",
            crate::snapshot::sha256_hex(uri.as_bytes())
        ))
    }

    /// A fresh file in the cache's `tmp/` (same filesystem as the blobs, so a rename lands it).
    pub fn temp_file(&self) -> std::io::Result<tempfile::NamedTempFile> {
        let tmp = self.root.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        tempfile::NamedTempFile::new_in(tmp)
    }

    /// The record of `uri`, if it was fetched before and its blobs are all still there.
    pub fn lookup(&self, uri: &str) -> Option<SourceRecord> {
        let text = std::fs::read_to_string(self.source_path(uri)).ok()?;
        let rec: SourceRecord = serde_json::from_str(&text).ok()?;
        (rec.uri == uri && rec.objects.iter().all(|o| self.blob(&o.sha256).is_file()))
            .then_some(rec)
    }

    /// Land a downloaded temp file as the blob `sha256` (a blob already there is kept).
    pub fn land_blob(
        &self,
        tmp: tempfile::NamedTempFile,
        sha256: &str,
    ) -> std::io::Result<PathBuf> {
        let dest = self.blob(sha256);
        if dest.is_file() {
            return Ok(dest);
        }
        std::fs::create_dir_all(dest.parent().expect("blobs/ has a parent"))?;
        // Read-only, and readable by the containers' non-root user (a temp file is 0600).
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o444))?;
        tmp.persist(&dest).map_err(|e| e.error)?;
        Ok(dest)
    }

    /// Store `bytes` as a blob (for `tug data cache add`); returns its hash.
    pub fn add_blob(&self, bytes: &[u8]) -> std::io::Result<String> {
        let sha = crate::snapshot::sha256_hex(bytes);
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes)?;
        self.land_blob(tmp, &sha)?;
        Ok(sha)
    }

    /// Store a local file as a blob, streaming (files may be large); returns (hash, size).
    pub fn add_file(&self, path: &Path) -> std::io::Result<(String, u64)> {
        let mut src = std::fs::File::open(path)?;
        let mut tmp = self.temp_file()?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = std::io::Read::read(&mut src, &mut buf)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            tmp.write_all(&buf[..n])?;
            size += n as u64;
        }
        let sha = crate::workspace::hex(&hash.finalize());
        self.land_blob(tmp, &sha)?;
        Ok((sha, size))
    }

    /// Give the cache a local copy of `uri` (a file, or a folder for a folder URI), as if
    /// it had been fetched: for machines that cannot reach the store. The record carries no
    /// validators, so a connected machine fetches the URI again to check it.
    pub fn import(&self, uri: &str, from: &Path) -> std::io::Result<SourceRecord> {
        let (kind, files) = if from.is_dir() {
            let mut files = Vec::new();
            walk(from, from, &mut files)?;
            files.sort();
            (Kind::Folder, files)
        } else {
            (Kind::File, vec![(String::new(), from.to_path_buf())])
        };
        let mut objects = Vec::with_capacity(files.len());
        for (rel, path) in files {
            let (sha256, size) = self.add_file(&path)?;
            objects.push(ObjectRecord {
                path: rel,
                size,
                etag: None,
                last_modified: None,
                sha256,
            });
        }
        let rec = SourceRecord {
            uri: uri.into(),
            kind,
            objects,
            fetched_at: crate::store::now(),
        };
        self.record(&rec)?;
        Ok(rec)
    }

    /// Write the record of a fetch (atomically: a reader sees the old or the new one).
    pub fn record(&self, rec: &SourceRecord) -> std::io::Result<()> {
        let path = self.source_path(&rec.uri);
        std::fs::create_dir_all(path.parent().expect("sources/ has a parent"))?;
        let mut tmp = self.temp_file()?;
        tmp.write_all(&serde_json::to_vec_pretty(rec).expect("records serialize"))?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Every record, for `tug data cache list`.
    pub fn records(&self) -> std::io::Result<Vec<SourceRecord>> {
        let dir = self.root.join("sources");
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let text = std::fs::read_to_string(entry?.path())?;
            if let Ok(rec) = serde_json::from_str::<SourceRecord>(&text) {
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.uri.cmp(&b.uri));
        Ok(out)
    }

    /// Remove what no record refers to: blobs of data that changed since, laid-out trees
    /// of old folder versions, and temp files of fetches that died. Anything younger than
    /// an hour stays, so a fetch landing its blobs before it writes their record is safe.
    /// With `dry_run`, only say what would go.
    pub fn prune(&self, dry_run: bool) -> std::io::Result<Pruned> {
        let records = self.records()?;
        let blobs: std::collections::HashSet<&str> = records
            .iter()
            .flat_map(|r| r.objects.iter().map(|o| o.sha256.as_str()))
            .collect();
        let trees: std::collections::HashSet<String> = records
            .iter()
            .filter(|r| r.kind == Kind::Folder)
            .map(|r| tree_hash(&r.objects))
            .collect();
        let mut pruned = Pruned::default();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for (dir, keep) in [("blobs", 0), ("trees", 1), ("tmp", 2)] {
            let entries = match std::fs::read_dir(self.root.join(dir)) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let meta = entry.metadata()?;
                let unused = meta.modified()? < hour_ago
                    && match keep {
                        0 => !blobs.contains(name.as_str()),
                        1 => !trees.contains(&name),
                        _ => true,
                    };
                if !unused {
                    continue;
                }
                if meta.is_file() {
                    pruned.bytes += meta.len();
                }
                pruned.removed.push(format!("{dir}/{name}"));
                if !dry_run {
                    if meta.is_dir() {
                        std::fs::remove_dir_all(entry.path())?;
                    } else {
                        std::fs::remove_file(entry.path())?;
                    }
                }
            }
        }
        pruned.removed.sort();
        Ok(pruned)
    }

    /// Where the data of `rec` is on disk: the blob of a file, or a folder of hard links
    /// to a folder's blobs (laid out once per tree hash).
    pub fn materialize(&self, rec: &SourceRecord) -> std::io::Result<PathBuf> {
        if rec.kind == Kind::File {
            return Ok(self.blob(&rec.objects[0].sha256));
        }
        let dest = self.root.join("trees").join(tree_hash(&rec.objects));
        if dest.is_dir() {
            return Ok(dest);
        }
        let tmp_root = self.root.join("tmp");
        std::fs::create_dir_all(&tmp_root)?;
        let tmp = tempfile::TempDir::new_in(&tmp_root)?;
        for o in &rec.objects {
            let at = safe_join(tmp.path(), &o.path).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("object path `{}` leaves its folder", o.path),
                )
            })?;
            if let Some(parent) = at.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::hard_link(self.blob(&o.sha256), &at)
                .or_else(|_| std::fs::copy(self.blob(&o.sha256), &at).map(drop))?;
        }
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
        std::fs::create_dir_all(dest.parent().expect("trees/ has a parent"))?;
        let laid_out = tmp.keep();
        match std::fs::rename(&laid_out, &dest) {
            Ok(()) => Ok(dest),
            // Another fetch laid out the same tree first: theirs is the same content.
            Err(_) if dest.is_dir() => {
                let _ = std::fs::remove_dir_all(&laid_out);
                Ok(dest)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&laid_out);
                Err(e)
            }
        }
    }
}

/// Every regular file under `dir`, with its path relative to `root` (`/`-separated).
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        // (following links: a copy handed over is what the links point at)
        let kind = std::fs::metadata(&path)?.file_type();
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).expect("under root");
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((rel.join("/"), path));
        }
    }
    Ok(())
}

/// `base/rel` when `rel` is a plain relative path (no `..`, not absolute). Pure.
pub fn safe_join(base: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    (!rel.as_os_str().is_empty()
        && rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_))))
    .then(|| base.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(path: &str, sha: &str) -> ObjectRecord {
        ObjectRecord {
            path: path.into(),
            size: 1,
            etag: None,
            last_modified: None,
            sha256: sha.into(),
        }
    }

    #[test]
    fn tree_hash_ignores_order_and_sees_every_change() {
        let a = [obj("a", "1"), obj("b/c", "2")];
        let b = [obj("b/c", "2"), obj("a", "1")];
        assert_eq!(tree_hash(&a), tree_hash(&b));
        assert_ne!(tree_hash(&a), tree_hash(&[obj("a", "1"), obj("b/c", "3")]));
        assert_ne!(tree_hash(&a), tree_hash(&[obj("a", "1"), obj("b/d", "2")]));
    }

    #[test]
    fn current_means_same_size_and_same_validator() {
        let mut o = obj("", "x");
        o.etag = Some("\"e1\"".into());
        o.last_modified = Some("t1".into());
        assert!(
            o.is_current(1, Some("\"e1\""), Some("t2")),
            "the ETag decides"
        );
        assert!(!o.is_current(1, Some("\"e2\""), Some("t1")));
        assert!(
            !o.is_current(2, Some("\"e1\""), None),
            "a size change is a change"
        );
        o.etag = None;
        assert!(o.is_current(1, None, Some("t1")));
        assert!(!o.is_current(1, None, Some("t2")));
        o.last_modified = None;
        assert!(
            !o.is_current(1, None, None),
            "nothing to compare: fetch again"
        );
    }

    #[test]
    fn object_paths_stay_inside_the_folder() {
        assert!(safe_join(Path::new("/c"), "a/b.csv").is_some());
        assert!(safe_join(Path::new("/c"), "../x").is_none());
        assert!(safe_join(Path::new("/c"), "/etc/passwd").is_none());
        assert!(
            safe_join(Path::new("/c"), "").is_none(),
            "not the folder itself"
        );
    }

    #[test]
    fn blobs_land_once_and_folders_lay_out_from_them() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DataCache::new(dir.path().to_path_buf());
        let sha = cache.add_blob(b"hello\n").unwrap();
        assert_eq!(cache.add_blob(b"hello\n").unwrap(), sha);
        let rec = SourceRecord {
            uri: "s3://b/p/".into(),
            kind: Kind::Folder,
            objects: vec![obj("x/one.txt", &sha)],
            fetched_at: "2026-12-07T00:00:00Z".into(),
        };
        cache.record(&rec).unwrap();
        assert_eq!(cache.lookup("s3://b/p/"), Some(rec.clone()));
        let tree = cache.materialize(&rec).unwrap();
        assert_eq!(std::fs::read(tree.join("x/one.txt")).unwrap(), b"hello\n");
        assert_eq!(cache.materialize(&rec).unwrap(), tree);
        let old = cache.add_blob(b"an older version\n").unwrap();
        assert!(
            cache.prune(false).unwrap().removed.is_empty(),
            "too young to go"
        );
        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        for blob in [&old, &sha] {
            std::fs::File::open(cache.blob(blob))
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
        let dry = cache.prune(true).unwrap();
        assert_eq!(dry.removed, [format!("blobs/{old}")]);
        assert!(cache.blob(&old).is_file(), "a dry run removes nothing");
        assert_eq!(cache.prune(false).unwrap().bytes, 17);
        assert!(!cache.blob(&old).exists() && cache.blob(&sha).is_file() && tree.is_dir());
        std::fs::remove_file(cache.blob(&sha)).ok();
        assert_eq!(
            cache.lookup("s3://b/p/"),
            None,
            "a record whose blob is gone is no hit"
        );
    }
}
