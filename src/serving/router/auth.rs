//! Endpoint key auth: `Authorization: Bearer <key>` checked against sha256 hashes in constant
//! time, so the router never holds a key and timing tells nothing about a near miss.

use sha2::{Digest, Sha256};

/// The accepted keys, as sha256 digests. Empty = the endpoint takes anonymous callers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyHashes {
    digests: Vec<[u8; 32]>,
}

/// Why a caller was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization` header, or not of the form `Bearer <key>`.
    MissingBearer,
    /// A bearer key that matches none of the endpoint's keys.
    WrongKey,
}

impl Denied {
    /// The text of the 401 body.
    pub fn message(self) -> &'static str {
        match self {
            Denied::MissingBearer => {
                "Authorization header missing or not 'Bearer <key>'; get the endpoint's keys with `tug online-endpoint get-credentials`"
            }
            Denied::WrongKey => {
                "The key in the Authorization header is not one of the endpoint's keys; get them with `tug online-endpoint get-credentials`"
            }
        }
    }
}

impl KeyHashes {
    pub fn new(digests: Vec<[u8; 32]>) -> Self {
        KeyHashes { digests }
    }

    pub fn is_open(&self) -> bool {
        self.digests.is_empty()
    }

    /// Checks the raw `Authorization` header value (if any) against the accepted keys.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), Denied> {
        if self.is_open() {
            return Ok(());
        }
        let key = authorization
            .and_then(bearer_key)
            .ok_or(Denied::MissingBearer)?;
        let presented: [u8; 32] = Sha256::digest(key).into();
        // Compare against every digest without stopping early: which key matched, and how
        // many bytes agreed, must not show in the response time.
        let matched = self.digests.iter().fold(false, |any, digest| {
            any | constant_time_eq(digest, &presented)
        });
        if matched {
            Ok(())
        } else {
            Err(Denied::WrongKey)
        }
    }
}

/// The key of a `Bearer <key>` header value (scheme case-insensitive, surrounding blanks
/// ignored); `None` for any other form.
fn bearer_key(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.first()?.is_ascii_whitespace() {
        return None;
    }
    let key = rest.trim_ascii();
    (!key.is_empty()).then_some(key)
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The lowercase hex sha256 of a key, as the control plane writes it into `key_sha256`.
pub fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::router::config::decode_sha256_hex;

    fn hashes(keys: &[&str]) -> KeyHashes {
        KeyHashes::new(
            keys.iter()
                .map(|key| decode_sha256_hex(&sha256_hex(key)).unwrap())
                .collect(),
        )
    }

    #[test]
    fn sha256_hex_is_the_standard_digest() {
        assert_eq!(
            sha256_hex("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }

    #[test]
    fn no_keys_means_open() {
        assert_eq!(KeyHashes::default().check(None), Ok(()));
    }

    #[test]
    fn primary_and_secondary_keys_both_work() {
        let keys = hashes(&["primary", "secondary"]);
        assert_eq!(keys.check(Some(b"Bearer primary")), Ok(()));
        assert_eq!(keys.check(Some(b"bearer  secondary ")), Ok(()));
        assert_eq!(keys.check(Some(b"Bearer other")), Err(Denied::WrongKey));
    }

    #[test]
    fn malformed_headers_are_missing_bearer() {
        let keys = hashes(&["primary"]);
        for header in [
            &b""[..],
            b"primary",
            b"Basic primary",
            b"Bearer",
            b"Bearer   ",
            b"Bearerprimary",
        ] {
            assert_eq!(
                keys.check(Some(header)),
                Err(Denied::MissingBearer),
                "{header:?}"
            );
        }
        assert_eq!(keys.check(None), Err(Denied::MissingBearer));
    }
}
