//! Workspace secrets: values a job or deployment needs (a database password, an API token)
//! that must not sit in job files, the store, logs or images in plain text.
//!
//! `tug secret set NAME` encrypts the value (XChaCha20-Poly1305, the name bound in as
//! associated data so a ciphertext cannot be moved to another name) into
//! `.tug/secrets.json` with a 32-byte key in `.tug/secret.key` (mode 0600, created on first
//! use; `TUG_SECRET_KEY_FILE` keeps it elsewhere). A job or deployment refers to a secret as
//! the whole value of an environment variable, `DB_PASSWORD: ${{secrets.DB_PASSWORD}}`: the
//! reference is what the store, `job show` and the API hold; the value is decrypted by the
//! server when the container is created, and every log line tug keeps or streams from that
//! container has the value replaced by `***`.
//!
//! Reference parsing and masking are pure; [`SecretStore`] does the file I/O.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{0}` is not a valid secret name: use letters, digits and `_`, starting with a letter or `_` (like an environment variable)"
    )]
    BadName(String),
    #[error(
        "no secret `{0}` in this workspace; set it with `tug secret set {0}` (the value is read from stdin)"
    )]
    Missing(String),
    #[error(
        "secret `{name}` cannot be decrypted with {key}: the key file is not the one it was set with, or {store} was altered\n  help: set it again with `tug secret set {name}`"
    )]
    Decrypt {
        name: String,
        key: PathBuf,
        store: PathBuf,
    },
    #[error("{path} is damaged: {why}\n  help: move it aside and set the secrets again")]
    Damaged { path: PathBuf, why: String },
    #[error("{path} must hold 32 bytes (it has {len}); move it aside and set the secrets again")]
    BadKey { path: PathBuf, len: usize },
    #[error(
        "the secret value is empty; give it on stdin (`printf %s \"$VALUE\" | tug secret set NAME`)"
    )]
    Empty,
}

pub type Result<T> = std::result::Result<T, Error>;

/// The text that stands for a masked value in logs.
pub const MASK: &str = "***";

/// `NAME` when `value` is exactly a secret reference, `${{secrets.NAME}}` (spaces allowed
/// inside the braces).
pub fn reference(value: &str) -> Option<&str> {
    let inner = value.trim().strip_prefix("${{")?.strip_suffix("}}")?.trim();
    let name = inner.strip_prefix("secrets.")?;
    valid_name(name).then_some(name)
}

/// Whether `value` mentions secrets at all (then it must be exactly one reference).
pub fn mentions_secret(value: &str) -> bool {
    value.contains("secrets.") && value.contains("${{")
}

/// Environment-variable style: `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// The secrets an environment refers to, by variable: `(variable, secret name)`.
pub fn references(env: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    env.iter()
        .filter_map(|(k, v)| reference(v).map(|name| (k.as_str(), name)))
        .collect()
}

/// Replaces secret values in text. Values shorter than 4 bytes are not masked (masking
/// every `1` in a log would hide the log, not the secret); multi-line values are masked
/// line by line too, since logs arrive a line at a time.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    needles: Vec<String>,
}

impl Masker {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut needles: Vec<String> = Vec::new();
        for v in values {
            for piece in std::iter::once(v).chain(v.lines()) {
                let piece = piece.trim_end_matches('\r');
                if piece.len() >= 4 && !needles.iter().any(|n| n == piece) {
                    needles.push(piece.to_string());
                }
            }
        }
        // Longest first, so a value that contains another is masked whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Masker { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    pub fn mask<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        if !self.needles.iter().any(|n| text.contains(n.as_str())) {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut out = text.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), MASK);
            }
        }
        std::borrow::Cow::Owned(out)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    secrets: BTreeMap<String, Sealed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sealed {
    nonce: String,
    ciphertext: String,
    updated_at: String,
}

/// What `tug secret list` shows: never a value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecretInfo {
    pub name: String,
    pub updated_at: String,
}

/// The encrypted secrets of one workspace.
pub struct SecretStore {
    store: PathBuf,
    key: PathBuf,
    /// Whether names must be environment-variable-like (user secrets) or are tug's own
    /// (endpoint names for endpoint keys).
    user_names: bool,
}

impl SecretStore {
    /// The store of the workspace whose state folder is `tug_dir` (`<workspace>/.tug`).
    pub fn new(tug_dir: &Path) -> SecretStore {
        let key = std::env::var_os("TUG_SECRET_KEY_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| tug_dir.join("secret.key"));
        SecretStore {
            store: tug_dir.join("secrets.json"),
            key,
            user_names: true,
        }
    }

    /// The endpoints' keys: sealed with the same key file as the user's secrets, in a
    /// store of their own so `tug secret list` shows only what the user set.
    pub fn endpoint_keys(tug_dir: &Path) -> SecretStore {
        SecretStore {
            store: tug_dir.join("secrets").join("endpoint-keys.json"),
            user_names: false,
            ..SecretStore::new(tug_dir)
        }
    }

    pub fn set(&self, name: &str, value: &str) -> Result<()> {
        if self.user_names && !valid_name(name) {
            return Err(Error::BadName(name.to_string()));
        }
        if value.is_empty() {
            return Err(Error::Empty);
        }
        let cipher = self.cipher(true)?;
        let mut nonce = [0u8; 24];
        fill_random(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .expect("encryption with a valid key cannot fail");
        let mut file = self.read()?;
        file.version = 1;
        file.secrets.insert(
            name.to_string(),
            Sealed {
                nonce: crate::workspace::hex(&nonce),
                ciphertext: crate::workspace::hex(&ciphertext),
                updated_at: crate::store::now(),
            },
        );
        self.write(&file)
    }

    /// Removes `name`; `false` when there was none.
    pub fn delete(&self, name: &str) -> Result<bool> {
        let mut file = self.read()?;
        let found = file.secrets.remove(name).is_some();
        if found {
            self.write(&file)?;
        }
        Ok(found)
    }

    pub fn list(&self) -> Result<Vec<SecretInfo>> {
        Ok(self
            .read()?
            .secrets
            .into_iter()
            .map(|(name, s)| SecretInfo {
                name,
                updated_at: s.updated_at,
            })
            .collect())
    }

    pub fn contains(&self, name: &str) -> Result<bool> {
        Ok(self.read()?.secrets.contains_key(name))
    }

    pub fn get(&self, name: &str) -> Result<String> {
        let file = self.read()?;
        let sealed = file
            .secrets
            .get(name)
            .ok_or_else(|| Error::Missing(name.to_string()))?;
        let damaged = |why: &str| Error::Damaged {
            path: self.store.clone(),
            why: format!("secret `{name}`: {why}"),
        };
        let nonce = unhex(&sealed.nonce)
            .filter(|n| n.len() == 24)
            .ok_or_else(|| damaged("bad nonce"))?;
        let ciphertext = unhex(&sealed.ciphertext).ok_or_else(|| damaged("bad ciphertext"))?;
        let plain = self
            .cipher(false)?
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| Error::Decrypt {
                name: name.to_string(),
                key: self.key.clone(),
                store: self.store.clone(),
            })?;
        String::from_utf8(plain).map_err(|_| damaged("not UTF-8"))
    }

    /// The environment with every `${{secrets.X}}` replaced by its value, and a masker for
    /// those values.
    pub fn resolve(
        &self,
        env: &BTreeMap<String, String>,
    ) -> Result<(BTreeMap<String, String>, Masker)> {
        let refs = references(env);
        if refs.is_empty() {
            return Ok((env.clone(), Masker::default()));
        }
        let mut out = env.clone();
        let mut values = Vec::new();
        for (var, name) in refs {
            let value = self.get(name)?;
            out.insert(var.to_string(), value.clone());
            values.push(value);
        }
        let masker = Masker::new(values.iter().map(String::as_str));
        Ok((out, masker))
    }

    /// A masker for the secrets `env` refers to; references that no longer resolve are
    /// skipped (nothing of theirs can be in the log).
    pub fn masker(&self, env: &BTreeMap<String, String>) -> Masker {
        let values: Vec<String> = references(env)
            .into_iter()
            .filter_map(|(_, name)| self.get(name).ok())
            .collect();
        Masker::new(values.iter().map(String::as_str))
    }

    fn read(&self) -> Result<StoreFile> {
        match std::fs::read(&self.store) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Damaged {
                path: self.store.clone(),
                why: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreFile::default()),
            Err(source) => Err(Error::Io {
                what: "reading",
                path: self.store.clone(),
                source,
            }),
        }
    }

    /// Atomically: a 0600 temporary file in the same folder, then a rename.
    fn write(&self, file: &StoreFile) -> Result<()> {
        let io = |source| Error::Io {
            what: "writing",
            path: self.store.clone(),
            source,
        };
        let dir = self.store.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".secrets-")
            .tempfile_in(dir)
            .map_err(io)?;
        let bytes = serde_json::to_vec_pretty(file).expect("the store serializes");
        tmp.write_all(&bytes)
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(io)?;
        tmp.persist(&self.store).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// The cipher with the workspace key; with `create`, a missing key file is made (0600).
    fn cipher(&self, create: bool) -> Result<XChaCha20Poly1305> {
        let io = |what, source| Error::Io {
            what,
            path: self.key.clone(),
            source,
        };
        let key = match std::fs::read(&self.key) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut key = [0u8; 32];
                fill_random(&mut key);
                if let Some(dir) = self.key.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| io("creating", e))?;
                }
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&self.key)
                    .map_err(|e| io("creating", e))?;
                f.write_all(&key).map_err(|e| io("writing", e))?;
                key.to_vec()
            }
            Err(e) => return Err(io("reading", e)),
        };
        if key.len() != 32 {
            return Err(Error::BadKey {
                path: self.key.clone(),
                len: key.len(),
            });
        }
        Ok(XChaCha20Poly1305::new_from_slice(&key).expect("32-byte key"))
    }
}

fn fill_random(buf: &mut [u8]) {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, buf))
        .expect("reading /dev/urandom");
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_whole_values() {
        assert_eq!(reference("${{secrets.DB_PASSWORD}}"), Some("DB_PASSWORD"));
        assert_eq!(reference(" ${{ secrets.tok }} "), Some("tok"));
        assert_eq!(reference("x${{secrets.A}}"), None);
        assert_eq!(reference("${{secrets.1A}}"), None);
        assert_eq!(reference("${{inputs.a}}"), None);
        assert!(mentions_secret("pre-${{secrets.A}}"));
        assert!(!mentions_secret("plain"));
    }

    #[test]
    fn masking_replaces_every_occurrence_longest_first() {
        let m = Masker::new(["hunter22", "hunter22-extra", "ab", "line one\nline two"]);
        assert_eq!(m.mask("pw=hunter22 and hunter22-extra"), "pw=*** and ***");
        assert_eq!(
            m.mask("ab stays"),
            "ab stays",
            "short values are not masked"
        );
        assert_eq!(m.mask("got line two"), "got ***");
        assert!(matches!(m.mask("nothing"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn values_are_encrypted_at_rest_and_bound_to_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore {
            store: dir.path().join("secrets.json"),
            key: dir.path().join("secret.key"),
            user_names: true,
        };
        store.set("DB_PASSWORD", "correct horse battery").unwrap();
        let on_disk = std::fs::read_to_string(dir.path().join("secrets.json")).unwrap();
        assert!(!on_disk.contains("correct horse"), "{on_disk}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(store.get("DB_PASSWORD").unwrap(), "correct horse battery");

        // A ciphertext moved to another name does not decrypt.
        let mut file: StoreFile = serde_json::from_str(&on_disk).unwrap();
        let sealed = file.secrets["DB_PASSWORD"].clone();
        file.secrets.insert("OTHER".into(), sealed);
        store.write(&file).unwrap();
        assert!(matches!(store.get("OTHER"), Err(Error::Decrypt { .. })));

        // Another key does not decrypt either.
        std::fs::write(dir.path().join("secret.key"), [9u8; 32]).unwrap();
        assert!(matches!(
            store.get("DB_PASSWORD"),
            Err(Error::Decrypt { .. })
        ));
    }

    #[test]
    fn resolve_swaps_references_for_values_and_masks_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore {
            store: dir.path().join("secrets.json"),
            key: dir.path().join("secret.key"),
            user_names: true,
        };
        store.set("TOKEN", "s3cr3t-token").unwrap();
        let env = BTreeMap::from([
            ("API_TOKEN".to_string(), "${{secrets.TOKEN}}".to_string()),
            ("PLAIN".to_string(), "1".to_string()),
        ]);
        let (resolved, masker) = store.resolve(&env).unwrap();
        assert_eq!(resolved["API_TOKEN"], "s3cr3t-token");
        assert_eq!(resolved["PLAIN"], "1");
        assert_eq!(masker.mask("token is s3cr3t-token"), "token is ***");
        assert!(store.delete("TOKEN").unwrap());
        assert!(matches!(store.resolve(&env), Err(Error::Missing(_))));
        assert!(store.list().unwrap().is_empty());
    }
}
