//! Run tokens: what a run's container gets as `MLFLOW_TRACKING_TOKEN`. Each token names
//! one run and carries an HMAC of it under the workspace token, so the server checks it
//! without storing anything and the workspace token never enters a container.

use sha2::{Digest, Sha256};

const PREFIX: &str = "tug-run";

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn mac(workspace_token: &str, run_id: &str) -> String {
    crate::workspace::hex(&hmac_sha256(
        workspace_token.as_bytes(),
        format!("mlflow-run:{run_id}").as_bytes(),
    ))
}

/// The token that lets its holder write to `run_id` only.
pub fn run_token(workspace_token: &str, run_id: &str) -> String {
    format!("{PREFIX}.{run_id}.{}", mac(workspace_token, run_id))
}

/// The run a token was made for, if it is genuine.
pub fn verify(workspace_token: &str, given: &str) -> Option<String> {
    let rest = given.strip_prefix(PREFIX)?.strip_prefix('.')?;
    let (run_id, tag) = rest.rsplit_once('.')?;
    let want = mac(workspace_token, run_id);
    let same = want.len() == tag.len()
        && want
            .bytes()
            .zip(tag.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same.then(|| run_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 and test case 6 (a key longer than the block).
        assert_eq!(
            crate::workspace::hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            crate::workspace::hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn a_token_names_its_run_and_cannot_be_bent_to_another() {
        let t = run_token("ws-secret", "brave_fig_1");
        assert_eq!(verify("ws-secret", &t).as_deref(), Some("brave_fig_1"));
        assert!(!t.contains("ws-secret"));
        assert_eq!(verify("other-secret", &t), None);
        let forged = t.replace("brave_fig_1", "brave_fig_2");
        assert_eq!(verify("ws-secret", &forged), None);
        assert_eq!(verify("ws-secret", "ws-secret"), None);
        assert_eq!(verify("ws-secret", "tug-run.x"), None);
    }
}
