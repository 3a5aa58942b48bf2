//! Remote data for job inputs: `https://`, `s3://`, `wasbs://`/`abfss://` and
//! `azureml://datastores/...` URIs fetched once into a content-addressed cache in the
//! workspace, then mounted like local data.
//!
//! The fetch runs where the user submits (the CLI), with the user's own credentials from the
//! environment; the server and the containers never see them, and the cache records only
//! what was fetched (URIs, sizes, validators, content hashes).

pub mod cache;
pub mod fetch;
pub mod upload;
pub mod uri;

pub use cache::{DataCache, Kind, SourceRecord};
pub use fetch::{LocalCopy, Outcome, fetch};
pub use uri::{DatastoreConfig, RemoteUri, UriError, is_remote};

/// Why remote data could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Uri(#[from] UriError),
    #[error(
        "cannot reach {host} to fetch `{given}`: {cause}\n  help: this machine looks offline (or {host} is down). Copy the data here and point `path:` at the copy, or hand the copy to tug under this URI, so the job file runs unchanged:\n    tug data cache add {given} --from <local copy>"
    )]
    Offline {
        given: String,
        host: String,
        cause: String,
    },
    #[error(
        "`{given}` does not exist: {what}\n  help: check the URI; a file is `type: uri_file`, a folder (a prefix of objects) `type: uri_folder` (the default)"
    )]
    NotFound { given: String, what: String },
    #[error(
        "`{given}`: the store refused access: {cause}\n  help: give tug credentials in the environment of `tug job create`: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for s3://, AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_KEY for wasbs:// and abfss://"
    )]
    Denied { given: String, cause: String },
    #[error("`{given}`: {cause}")]
    Store { given: String, cause: String },
    #[error("data cache {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    fn io(cache: &DataCache, source: std::io::Error) -> Error {
        Error::Io {
            dir: cache.root().display().to_string(),
            source,
        }
    }

    fn from_store(given: &str, uri: &RemoteUri, e: object_store::Error) -> Error {
        let cause = cause_chain(&e);
        match e {
            object_store::Error::NotFound { .. } => Error::NotFound {
                given: given.into(),
                what: "the store has no such object".into(),
            },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => Error::Denied {
                given: given.into(),
                cause,
            },
            _ if is_unreachable(&e) => Error::Offline {
                given: given.into(),
                host: uri.host(),
                cause: root_cause(&e),
            },
            _ => Error::Store {
                given: given.into(),
                cause,
            },
        }
    }
}

/// Every message in an error's source chain, once each.
fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The innermost message: what the network said (`dns error: ...`, `Connection refused`).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Whether the error is the network's (no route, no DNS, refused, timed out) rather than
/// the store's answer.
fn is_unreachable(e: &(dyn std::error::Error + 'static)) -> bool {
    // A certificate the client rejects is not an outage: it must not fall back to a stale
    // copy in silence.
    let text = cause_chain(e).to_lowercase();
    if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        return false;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<reqwest::Error>()
            && (r.is_connect() || r.is_timeout())
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        cur = err.source();
    }
    ["dns error", "connection refused", "timed out"]
        .iter()
        .any(|s| text.contains(s))
}
