//! Remote data URIs as Azure ML job files write them, parsed into what an object store
//! needs (which service, which bucket or container, which key). Pure.
//!
//! - `https://host/path`, `http://host/path`: a plain web server (GET and HEAD).
//! - `s3://bucket/key`: S3 or an S3-compatible server (`AWS_ENDPOINT_URL`).
//! - `wasbs://container@account.blob.core.windows.net/path` (and `wasb://`), and
//!   `abfss://filesystem@account.dfs.core.windows.net/path` (and `abfs://`): Azure storage.
//! - `azureml://datastores/<name>/paths/<path>` (and the long form that starts with
//!   `azureml://subscriptions/.../workspaces/<ws>/datastores/<name>/paths/<path>`): a
//!   datastore named in the workspace's `.tug/config.yaml`, which says what it stands for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One datastore of `.tug/config.yaml`'s `datastores:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreConfig {
    /// Where the datastore's root is: `s3://bucket/prefix`, `wasbs://...`, `https://...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Or a folder on this host (an NFS mount, a shared disk): read in place, not fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<std::path::PathBuf>,
}

/// A datastore of this host: the workspace's own (`workspaceblobstore`, unless the config
/// points it elsewhere) or one whose config gives a `path:`. `None` for remote ones; an
/// error for a path that would leave the datastore's folder.
pub fn local_datastore(
    given: &str,
    datastores: &BTreeMap<String, DatastoreConfig>,
    workspace_store: &std::path::Path,
) -> Option<Result<std::path::PathBuf, String>> {
    let (name, path) = datastore_part(given)?;
    let root = match datastores.get(name) {
        Some(DatastoreConfig {
            path: Some(root), ..
        }) => root.clone(),
        Some(_) => return None,
        None if name == crate::datastore::upload::WORKSPACE_DATASTORE => {
            workspace_store.to_path_buf()
        }
        None => return None,
    };
    let rel = std::path::Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    }) {
        return Some(Err(format!(
            "the path `{path}` leaves datastore `{name}` (`..` is not allowed)"
        )));
    }
    Some(Ok(root.join(rel)))
}

/// A remote location, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteUri {
    /// `origin` is `scheme://host[:port]`; `path` has no leading `/`.
    Http {
        origin: String,
        path: String,
    },
    S3 {
        bucket: String,
        key: String,
    },
    Azure {
        account: String,
        container: String,
        path: String,
        /// The blob endpoint's host (`<account>.blob.core.windows.net`; a `dfs` host is
        /// read through its blob endpoint).
        host: String,
    },
}

/// Why a URI cannot be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error(
        "`{0}` is not a URI tug can fetch\n  help: use https://, s3://, wasbs://, abfss:// or azureml://datastores/<name>/paths/<path>"
    )]
    Unsupported(String),
    #[error("`{uri}`: {why}\n  help: {help}")]
    Malformed {
        uri: String,
        why: String,
        help: String,
    },
    #[error(
        "`{uri}` names datastore `{name}`, which this workspace does not define\n  help: add it to .tug/config.yaml, e.g.\n    datastores:\n      {name}: {{url: s3://my-bucket/prefix}}   # or {{path: /mnt/shared}} for a folder here\n  (`tug datastore list` shows the defined ones)"
    )]
    UnknownDatastore { uri: String, name: String },
}

fn malformed(uri: &str, why: &str, help: &str) -> UriError {
    UriError::Malformed {
        uri: uri.into(),
        why: why.into(),
        help: help.into(),
    }
}

/// Whether `given` is a remote data URI tug fetches (as opposed to a local path or an
/// asset reference such as `azureml:name:version`).
pub fn is_remote(given: &str) -> bool {
    [
        "http://", "https://", "s3://", "wasb://", "wasbs://", "abfs://", "abfss://",
    ]
    .iter()
    .any(|p| given.starts_with(p))
        || datastore_part(given).is_some()
}

/// `(datastore name, path)` of an `azureml://...datastores/<name>/paths/<path>` URI.
fn datastore_part(given: &str) -> Option<(&str, &str)> {
    let rest = given.strip_prefix("azureml://")?;
    let at = if rest.starts_with("datastores/") {
        0
    } else {
        rest.find("/datastores/")? + 1
    };
    let rest = &rest[at + "datastores/".len()..];
    let (name, path) = rest.split_once("/paths/")?;
    (!name.is_empty() && !name.contains('/')).then_some((name, path))
}

/// Parse `given`, resolving `azureml://datastores/...` through `datastores`.
pub fn parse(
    given: &str,
    datastores: &BTreeMap<String, DatastoreConfig>,
) -> Result<RemoteUri, UriError> {
    if given.starts_with("azureml://") {
        let Some((name, path)) = datastore_part(given) else {
            return Err(malformed(
                given,
                "an azureml:// data path names a datastore and a path",
                "write azureml://datastores/<name>/paths/<path>",
            ));
        };
        let store = datastores
            .get(name)
            .ok_or_else(|| UriError::UnknownDatastore {
                uri: given.into(),
                name: name.into(),
            })?;
        let Some(url) = &store.url else {
            return Err(malformed(
                given,
                &format!("datastore `{name}` is a folder on this host, not a store to fetch from"),
                "name it as a job input (it is read in place)",
            ));
        };
        if datastore_part(url).is_some() {
            return Err(malformed(
                url,
                &format!("datastore `{name}` points at another datastore"),
                "give the datastore an https://, s3://, wasbs:// or abfss:// url",
            ));
        }
        let root = url.trim_end_matches('/');
        return parse_direct(&format!("{root}/{}", path.trim_start_matches('/')));
    }
    parse_direct(given)
}

fn parse_direct(given: &str) -> Result<RemoteUri, UriError> {
    let (scheme, rest) = given
        .split_once("://")
        .ok_or_else(|| UriError::Unsupported(given.into()))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(malformed(
            given,
            "the URI has no host",
            "write scheme://host/path",
        ));
    }
    // Whatever a URI carries is written to the cache's records and shown in messages and
    // the container's command, so it must not carry a secret.
    if rest.contains('?') || rest.contains('#') {
        return Err(malformed(
            &redact(given),
            "a query string (a SAS token, a signed URL) would be stored with the data's name",
            "drop it from the URI and give tug the credential in the environment: AZURE_STORAGE_SAS_KEY for Azure storage, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for s3://",
        ));
    }
    if matches!(scheme, "http" | "https") && authority.contains('@') {
        return Err(malformed(
            &redact(given),
            "a user name or password in the URI would be stored with the data's name",
            "serve the data without credentials in the URL, or from s3:// or wasbs:// with credentials in the environment",
        ));
    }
    let path = path.to_string();
    match scheme {
        "http" | "https" => Ok(RemoteUri::Http {
            origin: format!("{scheme}://{authority}"),
            path,
        }),
        "s3" => Ok(RemoteUri::S3 {
            bucket: authority.into(),
            key: path,
        }),
        "wasb" | "wasbs" | "abfs" | "abfss" => {
            let (container, host) = authority.split_once('@').ok_or_else(|| {
                malformed(
                    given,
                    "an Azure storage URI names its container before `@`",
                    "write wasbs://<container>@<account>.blob.core.windows.net/<path>",
                )
            })?;
            let account = host.split('.').next().unwrap_or_default();
            if container.is_empty() || account.is_empty() {
                return Err(malformed(
                    given,
                    "the container or the account is empty",
                    "write wasbs://<container>@<account>.blob.core.windows.net/<path>",
                ));
            }
            Ok(RemoteUri::Azure {
                account: account.into(),
                container: container.into(),
                path,
                host: host.replacen(".dfs.", ".blob.", 1),
            })
        }
        _ => Err(UriError::Unsupported(given.into())),
    }
}

impl RemoteUri {
    /// The object's key inside its store (no leading `/`).
    pub fn key(&self) -> &str {
        match self {
            RemoteUri::Http { path, .. } => path,
            RemoteUri::S3 { key, .. } => key,
            RemoteUri::Azure { path, .. } => path,
        }
    }

    /// The host a connection goes to, for error messages.
    pub fn host(&self) -> String {
        match self {
            RemoteUri::Http { origin, .. } => origin.clone(),
            RemoteUri::S3 { bucket, .. } => format!("S3 bucket {bucket}"),
            RemoteUri::Azure { host, .. } => host.clone(),
        }
    }

    /// The last path segment: what a fetched file is called inside the container.
    pub fn file_name(&self) -> Option<&str> {
        self.key()
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
    }

    /// One string that names the object whatever way it was written (a datastore resolves
    /// to the URL it stands for): the key of the cache's index.
    pub fn canonical(&self) -> String {
        match self {
            RemoteUri::Http { origin, path } => format!("{origin}/{path}"),
            RemoteUri::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
            RemoteUri::Azure {
                container,
                path,
                host,
                ..
            } => format!("wasbs://{container}@{host}/{path}"),
        }
    }

    /// The cache's key for this URI read as `kind`: a folder's ends in `/`, a file's does
    /// not, so `s3://b/x` and `s3://b/x/` as folders are one entry and a file is another.
    pub fn cache_key(&self, kind: crate::datastore::Kind) -> String {
        let c = self.canonical();
        let trimmed = c.trim_end_matches('/');
        match kind {
            crate::datastore::Kind::File => trimmed.to_string(),
            crate::datastore::Kind::Folder => format!("{trimmed}/"),
        }
    }
}

/// `given` without anything after `?` or `#` and without a URL's user info, for messages.
pub fn redact(given: &str) -> String {
    let cut = given.find(['?', '#']).unwrap_or(given.len());
    let mut out = given[..cut].to_string();
    if let Some((scheme, rest)) = out.split_once("://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if let Some((_, host)) = authority.rsplit_once('@')
            && matches!(scheme, "http" | "https")
        {
            out = format!("{scheme}://***@{host}/{path}");
        }
    }
    if cut < given.len() {
        out.push_str("?***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> BTreeMap<String, DatastoreConfig> {
        BTreeMap::new()
    }

    #[test]
    fn parses_the_schemes_azure_examples_use() {
        assert_eq!(
            parse(
                "https://azuremlexamples.blob.core.windows.net/datasets/iris.csv",
                &none()
            )
            .unwrap(),
            RemoteUri::Http {
                origin: "https://azuremlexamples.blob.core.windows.net".into(),
                path: "datasets/iris.csv".into()
            }
        );
        let wasbs = parse(
            "wasbs://datasets@azuremlexamples.blob.core.windows.net/iris.csv",
            &none(),
        )
        .unwrap();
        assert_eq!(
            wasbs,
            RemoteUri::Azure {
                account: "azuremlexamples".into(),
                container: "datasets".into(),
                path: "iris.csv".into(),
                host: "azuremlexamples.blob.core.windows.net".into(),
            }
        );
        assert_eq!(
            wasbs.cache_key(crate::datastore::Kind::File),
            "wasbs://datasets@azuremlexamples.blob.core.windows.net/iris.csv"
        );
        assert_eq!(wasbs.file_name(), Some("iris.csv"));
        let abfss = parse("abfss://fs@acct.dfs.core.windows.net/a/b/", &none()).unwrap();
        assert_eq!(abfss.key(), "a/b/");
        assert_eq!(abfss.file_name(), Some("b"));
        assert_eq!(
            parse("s3://bucket/k/x.csv", &none()).unwrap().canonical(),
            "s3://bucket/k/x.csv"
        );
        assert!(is_remote("wasbs://a@b/c") && is_remote("azureml://datastores/x/paths/y"));
        assert!(!is_remote("azureml:iris:1") && !is_remote("./data") && !is_remote("runs:/x/m"));
    }

    #[test]
    fn datastores_resolve_through_the_workspace_config() {
        let mut stores = BTreeMap::new();
        stores.insert(
            "lake".to_string(),
            DatastoreConfig {
                url: Some("s3://team-bucket/raw/".into()),
                path: None,
            },
        );
        let short = parse("azureml://datastores/lake/paths/iris/iris.csv", &stores).unwrap();
        let long = parse(
            "azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/lake/paths/iris/iris.csv",
            &stores,
        )
        .unwrap();
        assert_eq!(short, long);
        assert_eq!(short.canonical(), "s3://team-bucket/raw/iris/iris.csv");
        let err = parse("azureml://datastores/workspaceblobstore/paths/x", &stores).unwrap_err();
        assert!(
            err.to_string()
                .contains("datastores:\n      workspaceblobstore"),
            "{err}"
        );
    }

    #[test]
    fn credentials_in_a_uri_are_refused_and_never_repeated() {
        let sas = "https://acct.blob.core.windows.net/c/x.csv?sv=2022&sig=SECRETSIG";
        let err = parse(sas, &none()).unwrap_err().to_string();
        assert!(
            err.contains("AZURE_STORAGE_SAS_KEY") && !err.contains("SECRETSIG"),
            "{err}"
        );
        let err = parse("https://me:hunter2@host/x.csv", &none())
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("hunter2") && err.contains("***@host"),
            "{err}"
        );
        assert!(parse("wasbs://c@a.blob.core.windows.net/x?sig=1", &none()).is_err());
        let folder = parse("s3://b/p", &none()).unwrap();
        assert_eq!(
            folder.cache_key(crate::datastore::Kind::Folder),
            "s3://b/p/"
        );
        assert_eq!(
            parse("s3://b/p/", &none())
                .unwrap()
                .cache_key(crate::datastore::Kind::Folder),
            "s3://b/p/"
        );
        let dfs = parse("abfss://fs@acct.dfs.core.windows.net/a", &none()).unwrap();
        assert_eq!(dfs.host(), "acct.blob.core.windows.net");
    }

    #[test]
    fn malformed_uris_say_how_to_write_them() {
        let err = parse("wasbs://azuremlexamples.blob.core.windows.net/x", &none()).unwrap_err();
        assert!(err.to_string().contains("<container>@<account>"), "{err}");
        assert!(matches!(
            parse("gs://b/k", &none()),
            Err(UriError::Unsupported(_))
        ));
        assert!(parse("https:///x", &none()).is_err());
        assert!(parse("azureml://datastores/x", &none()).is_err());
    }
}
