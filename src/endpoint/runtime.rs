//! The `tug-infsrv` runtime as it is shipped into images, however tug was built.
//!
//! `make` links `tug-infsrv` statically, but a plain `cargo build` or `cargo install` links
//! it against the host's C library. Such a binary cannot start in the `FROM scratch` router
//! image (no loader: `exec /tug-infsrv: no such file or directory`), nor in a scoring image
//! whose C library is older than the host's. So a dynamic binary travels with its own loader
//! and libraries in a private folder, and is started through that loader
//! (`<dir>/ld-linux-x86-64.so.2 --library-path <dir> <binary> ...`): the image's own C
//! library, if it has one, is never used, and nothing leaks into the environment of the
//! Python workers it starts (no `LD_LIBRARY_PATH`).
//!
//! The ELF reading and the parsing of the loader's `--list` output are pure; [`Runtime::load`]
//! does the I/O (reading files, asking the host's loader where libraries are).

use std::path::{Path, PathBuf};

use crate::snapshot::Entry;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an executable this machine can inspect: {why}")]
    Elf { path: PathBuf, why: String },
    #[error(
        "{path} is dynamically linked and its loader {loader} could not list its libraries: {why}\n  \
         help: build it statically with `make` (or `cargo build --release` with RUSTFLAGS='-C target-feature=+crt-static' --target <host>), or set TUG_INFSRV to a static build"
    )]
    Libraries {
        path: PathBuf,
        loader: String,
        why: String,
    },
}

/// The binary, and for a dynamic one the loader and libraries it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub binary: Vec<u8>,
    /// File name of the loader among `libraries` (`ld-linux-x86-64.so.2`); `None` when static.
    pub loader: Option<String>,
    /// `(file name, contents)`, the loader included.
    pub libraries: Vec<(String, Vec<u8>)>,
}

impl Runtime {
    /// A runtime with nothing but the binary (static, or not ELF at all).
    pub fn standalone(binary: Vec<u8>) -> Runtime {
        Runtime {
            binary,
            loader: None,
            libraries: Vec::new(),
        }
    }

    /// Reads `path` and, when it is dynamically linked, the loader and libraries the host's
    /// loader would use for it.
    pub fn load(path: &Path) -> Result<Runtime, Error> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| Error::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        let binary = read(path)?;
        let interpreter = elf_interpreter(&binary).map_err(|why| Error::Elf {
            path: path.to_path_buf(),
            why,
        })?;
        let Some(loader) = interpreter else {
            return Ok(Runtime::standalone(binary));
        };
        let libraries_err = |why: String| Error::Libraries {
            path: path.to_path_buf(),
            loader: loader.clone(),
            why,
        };
        let out = std::process::Command::new(&loader)
            .arg("--list")
            .arg(path)
            .env_remove("LD_PRELOAD")
            .output()
            .map_err(|e| libraries_err(e.to_string()))?;
        if !out.status.success() {
            return Err(libraries_err(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        let listed =
            parse_loader_list(&String::from_utf8_lossy(&out.stdout)).map_err(libraries_err)?;
        let loader_name = file_name(&loader);
        let mut libraries = vec![(loader_name.clone(), read(Path::new(&loader))?)];
        for lib in listed {
            let name = file_name(&lib);
            if name != loader_name && !libraries.iter().any(|(n, _)| *n == name) {
                libraries.push((name, read(Path::new(&lib))?));
            }
        }
        Ok(Runtime {
            binary,
            loader: Some(loader_name),
            libraries,
        })
    }

    /// Files to place in a build context: the binary at `binary_path` and the libraries
    /// under `lib_dir` (both relative to the context).
    pub fn entries(&self, binary_path: &str, lib_dir: &str) -> Vec<Entry> {
        let mut entries = vec![Entry {
            path: binary_path.into(),
            data: Some(self.binary.clone()),
            executable: true,
        }];
        if !self.libraries.is_empty() {
            entries.push(Entry {
                path: lib_dir.into(),
                data: None,
                executable: false,
            });
        }
        entries.extend(self.libraries.iter().map(|(name, data)| Entry {
            path: format!("{lib_dir}/{name}"),
            data: Some(data.clone()),
            executable: true,
        }));
        entries
    }

    /// The argv that starts the binary installed at `binary` with libraries in `lib_dir`
    /// (absolute paths inside the image).
    pub fn command(&self, binary: &str, lib_dir: &str) -> Vec<String> {
        match &self.loader {
            None => vec![binary.to_string()],
            Some(loader) => vec![
                format!("{lib_dir}/{loader}"),
                "--library-path".into(),
                lib_dir.to_string(),
                binary.to_string(),
            ],
        }
    }
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// The program interpreter (`PT_INTERP`) of an ELF executable: `Some(loader path)` for a
/// dynamically linked one, `None` for a static one or a file that is not ELF (a script).
pub fn elf_interpreter(bytes: &[u8]) -> Result<Option<String>, String> {
    if bytes.len() < 16 || &bytes[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let wide = match bytes[4] {
        1 => false,
        2 => true,
        c => return Err(format!("unknown ELF class {c}")),
    };
    let little = match bytes[5] {
        1 => true,
        2 => false,
        d => return Err(format!("unknown ELF byte order {d}")),
    };
    let num = |at: usize, len: usize| -> Result<u64, String> {
        let b = bytes
            .get(at..at + len)
            .ok_or_else(|| format!("truncated ELF header (needs byte {})", at + len))?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if little { b[len - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Ok(v)
    };
    // e_phoff, e_phentsize, e_phnum; then p_type, p_offset, p_filesz within an entry.
    let (phoff, phentsize, phnum) = if wide {
        (num(0x20, 8)?, num(0x36, 2)?, num(0x38, 2)?)
    } else {
        (num(0x1c, 4)?, num(0x2a, 2)?, num(0x2c, 2)?)
    };
    let (off_at, off_len, size_at) = if wide { (8, 8, 32) } else { (4, 4, 16) };
    for i in 0..phnum {
        let entry = usize::try_from(phoff + i * phentsize).map_err(|e| e.to_string())?;
        if num(entry, 4)? != 3 {
            continue; // not PT_INTERP
        }
        let offset = num(entry + off_at, off_len)? as usize;
        let size = num(entry + size_at, off_len)? as usize;
        let raw = bytes
            .get(offset..offset.saturating_add(size))
            .ok_or("PT_INTERP points past the end of the file")?;
        let text = raw.split(|b| *b == 0).next().unwrap_or_default();
        let loader = std::str::from_utf8(text).map_err(|e| e.to_string())?;
        if !loader.starts_with('/') {
            return Err(format!("PT_INTERP `{loader}` is not an absolute path"));
        }
        return Ok(Some(loader.to_string()));
    }
    Ok(None)
}

/// The resolved library paths in the output of `ld.so --list` (what `ldd` prints):
/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`; the vDSO has no file and is
/// skipped; a library the loader cannot find is an error naming it.
pub fn parse_loader_list(out: &str) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(format!("{} not found", name.trim()));
                }
                rest
            }
            None => line,
        };
        let path = target.split(" (").next().unwrap_or(target).trim();
        if path.starts_with('/') {
            paths.push(path.to_string());
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_loader_of_a_dynamic_executable() {
        // This test binary is linked like the host's programs: `/bin/sh` is dynamic on
        // every Debian, so it makes a stable real sample.
        let sh = std::fs::read("/bin/sh").unwrap();
        let loader = elf_interpreter(&sh).unwrap().expect("/bin/sh is dynamic");
        assert!(loader.starts_with('/') && loader.contains("ld"), "{loader}");
    }

    #[test]
    fn scripts_and_short_files_have_no_loader() {
        assert_eq!(elf_interpreter(b"#!/bin/sh\nexit 1\n").unwrap(), None);
        assert_eq!(elf_interpreter(b"").unwrap(), None);
    }

    #[test]
    fn a_truncated_elf_header_is_an_error_not_a_panic() {
        let mut bytes = b"\x7fELF\x02\x01\x01".to_vec();
        bytes.resize(40, 0);
        assert!(elf_interpreter(&bytes).unwrap_err().contains("truncated"));
        let mut huge = std::fs::read("/bin/sh").unwrap();
        huge.truncate(0x40);
        huge[0x38] = 0xff; // e_phnum: far more program headers than bytes
        assert!(elf_interpreter(&huge).is_err());
    }

    #[test]
    fn reads_the_loader_list_like_ldd() {
        let out = "\tlinux-vdso.so.1 (0x00007ffc1b9f2000)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0c)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0b)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f0d)\n";
        assert_eq!(
            parse_loader_list(out).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        let missing = "\tlibfoo.so.1 => not found\n";
        assert_eq!(
            parse_loader_list(missing).unwrap_err(),
            "libfoo.so.1 not found"
        );
    }

    #[test]
    fn a_dynamic_runtime_starts_through_its_own_loader() {
        let rt = Runtime::load(Path::new("/bin/sh")).unwrap();
        let loader = rt.loader.clone().unwrap();
        assert!(rt.libraries.iter().any(|(n, _)| *n == loader));
        assert!(rt.libraries.iter().any(|(n, _)| n.starts_with("libc.so")));
        let argv = rt.command("/tug/tug-infsrv", "/tug/lib");
        assert_eq!(argv[0], format!("/tug/lib/{loader}"));
        assert_eq!(
            &argv[1..],
            ["--library-path", "/tug/lib", "/tug/tug-infsrv"]
        );
        let paths: Vec<String> = rt
            .entries("tug-infsrv", "lib")
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert!(paths.contains(&format!("lib/{loader}")));
        // The started program runs: the bundled loader and libc run `sh` from the bundle.
        let dir = tempfile::tempdir().unwrap();
        for (name, data) in &rt.libraries {
            std::fs::write(dir.path().join(name), data).unwrap();
        }
        std::fs::write(dir.path().join("sh"), &rt.binary).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let lib = dir.path().to_str().unwrap();
        let argv = rt.command(dir.path().join("sh").to_str().unwrap(), lib);
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .args(["-c", "echo bundled"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "bundled");
    }

    #[test]
    fn a_static_runtime_is_the_binary_alone() {
        let rt = Runtime::standalone(b"#!x".to_vec());
        assert_eq!(rt.command("/tug-infsrv", "/tug/lib"), ["/tug-infsrv"]);
        assert_eq!(rt.entries("tug-infsrv", "lib").len(), 1);
    }
}
