//! Deterministic tar snapshots of a folder (job code, Docker build contexts).
//!
//! The same files give the same bytes (sorted entries, zero mtimes, normalised modes
//! and owners), so a snapshot's sha256 names its content and an unchanged build
//! context hashes the same on every submit.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Azure refuses snapshots over 300 MB; so does tug, with the same advice.
pub const MAX_SNAPSHOT_BYTES: u64 = 300 * 1024 * 1024;

/// Folders never worth shipping.
const ALWAYS_SKIPPED: &[&str] = &[".git", ".tug", "__pycache__", ".ipynb_checkpoints"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the snapshot of {root} is over {limit} MB; list large files and folders in {root}/.amlignore (gitignore syntax) to leave them out"
    )]
    TooLarge { root: PathBuf, limit: u64 },
    #[error("{path} is not a folder")]
    NotAFolder { path: PathBuf },
}

/// One file or folder to put in a tar, already read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path with `/` separators; folders end without a slash.
    pub path: String,
    /// `None` for a folder.
    pub data: Option<Vec<u8>>,
    pub executable: bool,
}

/// A tar of `entries` (sorted by path), owned by `uid:gid`, mtime 0.
pub fn tar_bytes(entries: &[Entry], prefix: &str, uid: u64, gid: u64) -> Vec<u8> {
    tar_bytes_with_dir_mode(entries, prefix, uid, gid, 0o755)
}

/// As `tar_bytes`, with folders of mode `dir_mode`.
pub fn tar_bytes_with_dir_mode(
    entries: &[Entry],
    prefix: &str,
    uid: u64,
    gid: u64,
    dir_mode: u32,
) -> Vec<u8> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut builder = tar::Builder::new(Vec::new());
    for e in sorted {
        let mut header = tar::Header::new_gnu();
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(0);
        let path = if prefix.is_empty() {
            e.path.clone()
        } else if e.path.is_empty() {
            prefix.trim_end_matches('/').to_string()
        } else {
            format!("{}/{}", prefix.trim_end_matches('/'), e.path)
        };
        match &e.data {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(dir_mode);
                header.set_size(0);
                header.set_cksum();
                builder
                    .append_data(&mut header, format!("{path}/"), std::io::empty())
                    .expect("writing to a Vec cannot fail");
            }
            Some(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if e.executable { 0o755 } else { 0o644 });
                header.set_size(data.len() as u64);
                header.set_cksum();
                builder
                    .append_data(&mut header, path, data.as_slice())
                    .expect("writing to a Vec cannot fail");
            }
        }
    }
    builder.into_inner().expect("writing to a Vec cannot fail")
}

/// The files and folders of a tar, read back into entries.
pub fn entries_from_tar(bytes: &[u8]) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(bytes);
    for e in ar.entries()? {
        let mut e = e?;
        let path = e
            .path()?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let kind = e.header().entry_type();
        let mode = e.header().mode().unwrap_or(0o644);
        if kind.is_dir() {
            out.push(Entry {
                path,
                data: None,
                executable: false,
            });
        } else if kind.is_file() {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data)?;
            out.push(Entry {
                path,
                data: Some(data),
                executable: mode & 0o111 != 0,
            });
        }
    }
    Ok(out)
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::workspace::hex(&Sha256::digest(bytes))
}

/// Reads the folder `root` into entries, leaving out `.git`, `.tug`, caches and what
/// `.amlignore` (or, failing that, `.gitignore`) lists; refuses more than 300 MB.
pub fn read_folder(root: &Path) -> Result<Vec<Entry>, Error> {
    read_with(root, Some(IgnoreRules::load(root)))
}

/// Reads every file below `root`, as data is: no ignore rules, no size cap. For data
/// inputs, not code.
pub fn read_tree(root: &Path) -> Result<Vec<Entry>, Error> {
    read_with(root, None)
}

/// `ignore: None` takes everything.
fn read_with(root: &Path, ignore: Option<IgnoreRules>) -> Result<Vec<Entry>, Error> {
    if !root.is_dir() {
        return Err(Error::NotAFolder {
            path: root.to_path_buf(),
        });
    }
    let mut out = Vec::new();
    let mut total = 0u64;
    walk(root, root, ignore.as_ref(), &mut out, &mut total)?;
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    ignore: Option<&IgnoreRules>,
    out: &mut Vec<Entry>,
    total: &mut u64,
) -> Result<(), Error> {
    let read = |p: &Path, e| Error::Read {
        path: p.to_path_buf(),
        source: e,
    };
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(|e| read(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read(dir, e))?;
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = path
            .strip_prefix(root)
            .expect("walk stays below root")
            .to_string_lossy()
            .replace('\\', "/");
        // Follow symlinks as the user sees the tree; a dangling link is skipped.
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if let Some(ignore) = ignore
            && (ALWAYS_SKIPPED.contains(&name.as_str()) || ignore.skips(&rel, meta.is_dir()))
        {
            continue;
        }
        if meta.is_dir() {
            out.push(Entry {
                path: rel,
                data: None,
                executable: false,
            });
            walk(root, &path, ignore, out, total)?;
        } else if meta.is_file() {
            *total += meta.len();
            if ignore.is_some() && *total > MAX_SNAPSHOT_BYTES {
                return Err(Error::TooLarge {
                    root: root.to_path_buf(),
                    limit: MAX_SNAPSHOT_BYTES / 1024 / 1024,
                });
            }
            use std::os::unix::fs::PermissionsExt;
            let data = fs::read(&path).map_err(|e| read(&path, e))?;
            out.push(Entry {
                path: rel,
                data: Some(data),
                executable: meta.permissions().mode() & 0o111 != 0,
            });
        }
    }
    Ok(())
}

/// The subset of gitignore syntax people put in `.amlignore`: `name`, `*.ext`,
/// `dir/`, `/anchored`, `!negation` is not supported and ignored.
#[derive(Debug, Default)]
pub struct IgnoreRules {
    patterns: Vec<(String, bool, bool)>, // (glob, dir_only, anchored)
}

impl IgnoreRules {
    fn load(root: &Path) -> IgnoreRules {
        let text = fs::read_to_string(root.join(".amlignore"))
            .or_else(|_| fs::read_to_string(root.join(".gitignore")))
            .unwrap_or_default();
        IgnoreRules::parse(&text)
    }

    pub fn parse(text: &str) -> IgnoreRules {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
            .map(|l| {
                let dir_only = l.ends_with('/');
                let l = l.trim_end_matches('/');
                let anchored = l.starts_with('/') || l.contains('/');
                (l.trim_start_matches('/').to_string(), dir_only, anchored)
            })
            .collect();
        IgnoreRules { patterns }
    }

    /// Whether the relative path `rel` is left out.
    pub fn skips(&self, rel: &str, is_dir: bool) -> bool {
        let base = rel.rsplit('/').next().unwrap_or(rel);
        self.patterns.iter().any(|(glob, dir_only, anchored)| {
            (!dir_only || is_dir)
                && if *anchored {
                    glob_match(glob, rel)
                } else {
                    glob_match(glob, base)
                }
        })
    }
}

/// `*` (any run without `/`) and `?` glob matching.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && t[0] != b'/' && go(p, &t[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_files_same_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("b.py"), "print(1)").unwrap();
        fs::create_dir(tmp.path().join("pkg")).unwrap();
        fs::write(tmp.path().join("pkg/a.py"), "x = 1").unwrap();
        let one = tar_bytes(&read_folder(tmp.path()).unwrap(), "", 0, 0);
        // Touching a file changes its mtime but not the snapshot.
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(tmp.path().join("b.py"), "print(1)").unwrap();
        let two = tar_bytes(&read_folder(tmp.path()).unwrap(), "", 0, 0);
        assert_eq!(sha256_hex(&one), sha256_hex(&two));
        fs::write(tmp.path().join("b.py"), "print(2)").unwrap();
        let three = tar_bytes(&read_folder(tmp.path()).unwrap(), "", 0, 0);
        assert_ne!(sha256_hex(&one), sha256_hex(&three));
    }

    #[test]
    fn skips_git_caches_and_amlignore() {
        let tmp = tempfile::tempdir().unwrap();
        for d in [".git", "__pycache__", "data", "src"] {
            fs::create_dir(tmp.path().join(d)).unwrap();
        }
        fs::write(tmp.path().join(".git/HEAD"), "x").unwrap();
        fs::write(tmp.path().join("data/big.bin"), "x").unwrap();
        fs::write(tmp.path().join("src/m.py"), "x").unwrap();
        fs::write(tmp.path().join("src/m.pyc"), "x").unwrap();
        fs::write(tmp.path().join(".amlignore"), "data/\n*.pyc\n").unwrap();
        let paths: Vec<String> = read_folder(tmp.path())
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(paths, [".amlignore", "src", "src/m.py"]);
    }

    #[test]
    fn tar_prefix_and_owner() {
        let entries = vec![Entry {
            path: "train.py".into(),
            data: Some(b"x".to_vec()),
            executable: false,
        }];
        let bytes = tar_bytes(&entries, "tug/code", 1000, 1000);
        let mut ar = tar::Archive::new(bytes.as_slice());
        let e = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str().unwrap(), "tug/code/train.py");
        assert_eq!(e.header().uid().unwrap(), 1000);
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.pyc", "a.pyc"));
        assert!(!glob_match("*.pyc", "d/a.pyc"));
        assert!(glob_match("data/*", "data/x"));
        assert!(glob_match("a?c", "abc"));
    }
}
