//! Bringing a run's `./outputs` and `./logs` home safely. The container is untrusted code:
//! what it leaves there may be links pointing anywhere, device files, names that climb out
//! (`..`), a sparse file of 100 GB or a million tiny files. Only plain files and folders are
//! taken, strictly inside the run's folder, within a byte and file budget, and never so much
//! that the workspace disk fills: each refusal is a clear error, and what a failed
//! collection had written is removed again, so the store can still record the failure.

use std::io::{Read, Write};
use std::path::{Component, Path};

/// How much one run may bring home. Set on the server with `TUG_MAX_OUTPUT_BYTES`,
/// `TUG_MAX_OUTPUT_FILES` and `TUG_MIN_FREE_BYTES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectLimits {
    /// Bytes of archive copied out of the container, all folders together.
    pub max_bytes: u64,
    /// Files and folders unpacked, all folders together.
    pub max_files: u64,
    /// Free space the workspace's file system keeps: collection stops before going below.
    pub min_free_bytes: u64,
}

impl Default for CollectLimits {
    fn default() -> Self {
        CollectLimits {
            max_bytes: 20 << 30,
            max_files: 200_000,
            min_free_bytes: 1 << 30,
        }
    }
}

impl CollectLimits {
    /// The defaults, overridden by whichever of the three values are given (bytes may carry
    /// a `K`/`M`/`G` suffix, powers of 1024).
    pub fn from_values(
        max_bytes: Option<&str>,
        max_files: Option<&str>,
        min_free: Option<&str>,
    ) -> CollectLimits {
        let d = CollectLimits::default();
        CollectLimits {
            max_bytes: max_bytes.and_then(parse_size).unwrap_or(d.max_bytes),
            max_files: max_files
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(d.max_files),
            min_free_bytes: min_free.and_then(parse_size).unwrap_or(d.min_free_bytes),
        }
    }

    pub fn from_env() -> CollectLimits {
        let var = |k| std::env::var(k).ok();
        CollectLimits::from_values(
            var("TUG_MAX_OUTPUT_BYTES").as_deref(),
            var("TUG_MAX_OUTPUT_FILES").as_deref(),
            var("TUG_MIN_FREE_BYTES").as_deref(),
        )
    }
}

/// `123`, `64K`, `512M`, `20G` (powers of 1024).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 10),
        (i, 'm' | 'M') => (&t[..i], 20),
        (i, 'g' | 'G') => (&t[..i], 30),
        _ => (t, 0),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(
        "the run's {what} hold more than {limit} bytes; tug stopped copying them\n  help: write less, or raise TUG_MAX_OUTPUT_BYTES for the server"
    )]
    TooBig { what: String, limit: u64 },
    #[error(
        "the run's {what} hold more than {limit} files and folders; tug stopped unpacking them\n  help: archive many small files into one (tar, zip), or raise TUG_MAX_OUTPUT_FILES for the server"
    )]
    TooMany { what: String, limit: u64 },
    #[error(
        "the workspace disk is full ({free} bytes free at {path}, tug keeps {reserve}); the run's {what} were not kept\n  help: free space on that disk, or lower what the run writes"
    )]
    DiskFull {
        what: String,
        path: String,
        free: u64,
        reserve: u64,
    },
    #[error("cannot write the run's {what} to {path}: {source}")]
    Io {
        what: String,
        path: String,
        source: std::io::Error,
    },
}

/// The running count for one run, shared by its folders.
#[derive(Debug)]
pub struct Budget {
    pub limits: CollectLimits,
    pub bytes: u64,
    pub files: u64,
    /// Bytes written since free space was last checked.
    unchecked: u64,
}

/// Free space is asked of the file system after this many bytes.
const CHECK_FREE_EVERY: u64 = 32 << 20;

impl Budget {
    pub fn new(limits: CollectLimits) -> Budget {
        Budget {
            limits,
            bytes: 0,
            files: 0,
            unchecked: CHECK_FREE_EVERY, // check before the first write
        }
    }

    /// Accounts `n` archive bytes about to be written under `dir`.
    pub fn spend_bytes(&mut self, n: u64, dir: &Path, what: &str) -> Result<(), CollectError> {
        self.bytes += n;
        if self.bytes > self.limits.max_bytes {
            return Err(CollectError::TooBig {
                what: what.into(),
                limit: self.limits.max_bytes,
            });
        }
        self.unchecked += n;
        if self.unchecked >= CHECK_FREE_EVERY {
            self.unchecked = 0;
            if let Some(free) = free_bytes(dir)
                && free < self.limits.min_free_bytes.saturating_add(n)
            {
                return Err(self.disk_full(dir, what, free));
            }
        }
        Ok(())
    }

    fn spend_file(&mut self, what: &str) -> Result<(), CollectError> {
        self.files += 1;
        if self.files > self.limits.max_files {
            return Err(CollectError::TooMany {
                what: what.into(),
                limit: self.limits.max_files,
            });
        }
        Ok(())
    }

    fn disk_full(&self, dir: &Path, what: &str, free: u64) -> CollectError {
        CollectError::DiskFull {
            what: what.into(),
            path: dir.display().to_string(),
            free,
            reserve: self.limits.min_free_bytes,
        }
    }

    /// An I/O error while writing, with a full disk told apart.
    pub fn io(&self, e: std::io::Error, path: &Path, what: &str) -> CollectError {
        if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
            let free = path.parent().and_then(free_bytes).unwrap_or(0);
            return self.disk_full(path, what, free);
        }
        CollectError::Io {
            what: what.into(),
            path: path.display().to_string(),
            source: e,
        }
    }
}

/// Bytes available to this user on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Unpacks an engine archive (whose single top entry is the copied folder's basename) into
/// `target`, whatever that basename was. Only plain files and folders are taken: a path
/// that climbs out (`..`), an absolute path, a link (symbolic or hard) or a device could
/// write or read outside the run's folder. Each entry counts against `budget`.
pub fn unpack_renamed(
    archive: impl Read,
    target: &Path,
    budget: &mut Budget,
    what: &str,
) -> Result<Skipped, CollectError> {
    let io = |e, p: &Path, b: &Budget| b.io(e, p, what);
    std::fs::create_dir_all(target).map_err(|e| io(e, target, budget))?;
    let mut skipped = Skipped::default();
    let mut ar = tar::Archive::new(archive);
    let entries = ar.entries().map_err(|e| io(e, target, budget))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| io(e, target, budget))?;
        let path = entry
            .path()
            .map_err(|e| io(e, target, budget))?
            .into_owned();
        let mut comps = path.components();
        comps.next(); // the basename of the copied folder
        let rest = comps.as_path();
        if rest.as_os_str().is_empty() {
            continue;
        }
        if rest
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            skipped.unsafe_names += 1;
            continue;
        }
        let dest = target.join(rest);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                budget.spend_file(what)?;
                std::fs::create_dir_all(&dest).map_err(|e| io(e, &dest, budget))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                budget.spend_file(what)?;
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io(e, parent, budget))?;
                }
                // A parent that is not a real folder (it cannot be: links are never made)
                // or a name taken by a folder: refuse rather than write through it.
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .custom_flags_nofollow()
                    .open(&dest)
                    .map_err(|e| io(e, &dest, budget))?;
                let mut buf = vec![0u8; 256 << 10];
                loop {
                    let n = entry.read(&mut buf).map_err(|e| io(e, &dest, budget))?;
                    if n == 0 {
                        break;
                    }
                    budget.spend_bytes(n as u64, target, what)?;
                    f.write_all(&buf[..n]).map_err(|e| io(e, &dest, budget))?;
                }
            }
            // A hard link to a file earlier in the same folder (the engine archives the
            // second name of a file that way): a copy of that file. Any other target
            // (absolute, outside the folder) is skipped like a symbolic link.
            tar::EntryType::Link => {
                let source = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|l| l.into_owned())
                    .and_then(|l| inside(&l).map(|rel| target.join(rel)))
                    .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()));
                match source {
                    Some(source) => {
                        budget.spend_file(what)?;
                        let len = std::fs::metadata(&source).map_or(0, |m| m.len());
                        budget.spend_bytes(len, target, what)?;
                        std::fs::copy(&source, &dest).map_err(|e| io(e, &dest, budget))?;
                    }
                    None => skipped.links_and_devices += 1,
                }
            }
            _ => skipped.links_and_devices += 1,
        }
    }
    Ok(skipped)
}

/// The part of an archive path below its top folder, when it stays inside it.
fn inside(path: &Path) -> Option<&Path> {
    let mut comps = path.components();
    comps.next();
    let rest = comps.as_path();
    (!rest.as_os_str().is_empty() && rest.components().all(|c| matches!(c, Component::Normal(_))))
        .then_some(rest)
}

/// What [`unpack_renamed`] left out, for the run's system log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    pub links_and_devices: u64,
    pub unsafe_names: u64,
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW)
    }
}

/// Unpacks a spooled archive (from the start) into `target` within `budget`, off the
/// async threads; links, devices and unsafe names are skipped and logged.
pub async fn unpack_spool(
    mut spool: std::fs::File,
    target: &Path,
    budget: &mut Budget,
    what: &str,
    source: &str,
) -> Result<(), super::Error> {
    let target2 = target.to_path_buf();
    let what2 = what.to_string();
    let mut owned = std::mem::replace(budget, Budget::new(budget.limits));
    let (result, owned) = tokio::task::spawn_blocking(move || {
        let r = std::io::Seek::rewind(&mut spool)
            .map_err(|e| owned.io(e, &target2, &what2))
            .and_then(|()| unpack_renamed(spool, &target2, &mut owned, &what2));
        (r, owned)
    })
    .await
    .map_err(|e| super::Error::Collect {
        path: target.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    *budget = owned;
    let skipped = result?;
    if skipped != Skipped::default() {
        tracing::warn!(
            source,
            links_and_devices = skipped.links_and_devices,
            unsafe_names = skipped.unsafe_names,
            "not collecting links, devices or names outside {what}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..`; write the raw name as a hostile archive would.
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, path: &str, to: &str, kind: tar::EntryType) {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(kind);
        if !to.is_empty() {
            h.set_link_name(to).unwrap();
        }
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
    }

    #[test]
    fn only_plain_files_inside_the_folder_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        let tar = archive(|b| {
            file(b, "outputs/ok.txt", b"fine");
            link(
                b,
                "outputs/same.txt",
                "outputs/ok.txt",
                tar::EntryType::Link,
            );
            file(b, "outputs/../../outside.txt", b"escaped");
            file(b, "outputs/sub/../../../x", b"escaped");
            link(b, "outputs/passwd", "/etc/passwd", tar::EntryType::Symlink);
            link(b, "outputs/hard", "/etc/shadow", tar::EntryType::Link);
            link(b, "outputs/dev", "", tar::EntryType::Char);
            link(b, "outputs/fifo", "", tar::EntryType::Fifo);
        });
        let target = dir.path().join("run/outputs");
        let mut budget = Budget::new(CollectLimits::default());
        let skipped = unpack_renamed(&tar[..], &target, &mut budget, "outputs").unwrap();
        assert_eq!(std::fs::read(target.join("ok.txt")).unwrap(), b"fine");
        assert!(!outside.exists());
        assert!(!dir.path().join("x").exists());
        let names: Vec<_> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, ["ok.txt", "same.txt"]);
        assert_eq!(std::fs::read(target.join("same.txt")).unwrap(), b"fine");
        assert!(
            !std::fs::symlink_metadata(target.join("same.txt"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            skipped,
            Skipped {
                links_and_devices: 4,
                unsafe_names: 2
            }
        );
    }

    #[test]
    fn the_budget_stops_big_and_many() {
        let dir = tempfile::tempdir().unwrap();
        let tar = archive(|b| {
            for i in 0..20 {
                file(b, &format!("outputs/f{i}"), &[0u8; 1000]);
            }
        });
        let limits = CollectLimits {
            max_bytes: 5000,
            ..Default::default()
        };
        let mut budget = Budget::new(limits);
        let e =
            unpack_renamed(&tar[..], &dir.path().join("a"), &mut budget, "outputs").unwrap_err();
        assert!(matches!(e, CollectError::TooBig { limit: 5000, .. }), "{e}");
        let limits = CollectLimits {
            max_files: 10,
            ..Default::default()
        };
        let mut budget = Budget::new(limits);
        let e =
            unpack_renamed(&tar[..], &dir.path().join("b"), &mut budget, "outputs").unwrap_err();
        assert!(e.to_string().contains("more than 10 files"), "{e}");
    }

    #[test]
    fn a_disk_below_its_reserve_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let limits = CollectLimits {
            min_free_bytes: u64::MAX / 2,
            ..Default::default()
        };
        let mut budget = Budget::new(limits);
        let e = budget.spend_bytes(1, dir.path(), "outputs").unwrap_err();
        assert!(e.to_string().contains("the workspace disk is full"), "{e}");
    }

    #[test]
    fn sizes_and_env_values() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
        let l = CollectLimits::from_values(Some("1K"), Some("7"), None);
        assert_eq!((l.max_bytes, l.max_files), (1024, 7));
        assert_eq!(l.min_free_bytes, CollectLimits::default().min_free_bytes);
    }

    #[test]
    fn unpack_drops_the_top_folder() {
        let entries = vec![
            crate::snapshot::Entry {
                path: "outputs".into(),
                data: None,
                executable: false,
            },
            crate::snapshot::Entry {
                path: "outputs/sub".into(),
                data: None,
                executable: false,
            },
            crate::snapshot::Entry {
                path: "outputs/sub/model.pkl".into(),
                data: Some(b"m".to_vec()),
                executable: false,
            },
        ];
        let tar = crate::snapshot::tar_bytes(&entries, "", 1000, 1000);
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("artifacts/outputs");
        let mut budget = Budget::new(CollectLimits::default());
        unpack_renamed(tar.as_slice(), &target, &mut budget, "outputs").unwrap();
        assert_eq!(std::fs::read(target.join("sub/model.pkl")).unwrap(), b"m");
    }
}
