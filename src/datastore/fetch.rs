//! Fetching remote data into the cache through the `object_store` crate: one client per
//! kind of store, credentials from the caller's environment (never written anywhere), and
//! a conditional check against what the cache holds, so unchanged data is not downloaded
//! twice and changed data behind an unchanged URI is.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ClientOptions, ObjectMeta, ObjectStore, RetryConfig};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::Error;

use super::cache::{DataCache, Kind, ObjectRecord, SourceRecord};
use super::uri::RemoteUri;

/// What a fetch produced.
#[derive(Debug, Clone)]
pub struct LocalCopy {
    /// The blob (a file) or the laid-out tree (a folder).
    pub path: std::path::PathBuf,
    pub record: SourceRecord,
    pub outcome: Outcome,
}

/// How the cache answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Downloaded now (`bytes` of it; a folder may reuse some objects).
    Fetched { bytes: u64 },
    /// The store says nothing changed since the cached copy.
    Current,
    /// The store could not be reached; the copy fetched earlier is used.
    Stale,
}

/// The client for one URI's store. Timeouts and retries are short: a machine that is
/// offline should hear so in seconds, not after the crate's default of minutes.
fn store_for(uri: &RemoteUri) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let options = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(3600));
    let retry = RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let var = |k: &str| std::env::var_os(k).is_some();
    let truthy = |k: &str| std::env::var(k).is_ok_and(|v| v == "true" || v == "1");
    // (the options replace what `from_env` read of them, so plain HTTP is decided here)
    let http_endpoint = |keys: &[&str]| {
        keys.iter()
            .any(|k| std::env::var(k).is_ok_and(|v| v.starts_with("http://")))
    };
    Ok(match uri {
        RemoteUri::Http { origin, .. } => Arc::new(
            object_store::http::HttpBuilder::new()
                .with_url(origin)
                .with_client_options(options.with_allow_http(origin.starts_with("http://")))
                .with_retry(retry)
                .build()?,
        ),
        RemoteUri::S3 { bucket, .. } => {
            let allow_http =
                truthy("AWS_ALLOW_HTTP") || http_endpoint(&["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]);
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_client_options(options.with_allow_http(allow_http))
                .with_retry(retry);
            // No credentials in the environment: a public bucket, read unsigned (rather
            // than asking an instance-metadata service that is not there).
            if !var("AWS_ACCESS_KEY_ID") && !var("AWS_WEB_IDENTITY_TOKEN_FILE") {
                b = b.with_skip_signature(true);
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err()
            {
                b = b.with_region("us-east-1");
            }
            Arc::new(b.build()?)
        }
        RemoteUri::Azure {
            account,
            container,
            host,
            ..
        } => {
            use object_store::azure::AzureConfigKey as K;
            let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_account(account)
                .with_container_name(container)
                .with_client_options(options.with_allow_http(
                    truthy("AZURE_ALLOW_HTTP") || truthy("AZURE_STORAGE_USE_EMULATOR"),
                ))
                .with_retry(retry);
            // Whatever credential `from_env` found (under any of its names), else a
            // public container, read unsigned (Azure's example datasets are public).
            let has_credential = [
                K::AccessKey,
                K::SasKey,
                K::Token,
                K::ClientSecret,
                K::FederatedTokenFile,
                K::UseAzureCli,
                K::UseEmulator,
                K::MsiEndpoint,
            ]
            .iter()
            .any(|k| {
                b.get_config_value(k)
                    .is_some_and(|v| !v.is_empty() && v != "false")
            });
            if !has_credential {
                b = b.with_skip_signature(true);
            }
            if !host.ends_with(".blob.core.windows.net") {
                // A sovereign cloud or a private endpoint: the host the URI names.
                b = b.with_endpoint(format!("https://{host}"));
            }
            Arc::new(b.build()?)
        }
    })
}

/// Fetch `uri` (given as `given` in the job file) into `cache`, or answer from it.
/// `on_download` hears of each object before it is downloaded (its key and size), so a
/// caller can say why a submission is taking a while.
pub async fn fetch(
    cache: &DataCache,
    uri: &RemoteUri,
    given: &str,
    kind: Kind,
    on_download: &(dyn Fn(&str, u64) + Sync),
) -> Result<LocalCopy, Error> {
    if kind == Kind::Folder && matches!(uri, RemoteUri::Http { .. }) {
        return Err(Error::Store {
            given: given.into(),
            cause: "a web server cannot list a folder\n  help: if the URI names a file, say `type: uri_file` (an input without `type:` is a uri_folder); for a folder, use a store that lists (s3://, wasbs://, abfss://)".into(),
        });
    }
    let canonical = uri.cache_key(kind);
    let key =
        StorePath::from_url_path(uri.key().trim_end_matches('/')).map_err(|e| Error::Store {
            given: given.into(),
            cause: format!("the path is not a valid object key: {e}"),
        })?;
    let cached = cache.lookup(&canonical).filter(|r| r.kind == kind);
    let store = store_for(uri).map_err(|e| Error::from_store(given, uri, e))?;
    let listed = match kind {
        Kind::File => head(&*store, &key).await.map(|m| vec![m]),
        Kind::Folder => list(&*store, &key).await,
    };
    let listed = match listed {
        Ok(l) => l,
        Err(e) => {
            let err = Error::from_store(given, uri, e);
            if let (Error::Offline { host, cause, .. }, Some(rec)) = (&err, cached) {
                tracing::warn!(
                    "{given}: cannot reach {host} ({cause}); using the copy cached at {}",
                    rec.fetched_at
                );
                let path = cache.materialize(&rec).map_err(|e| Error::io(cache, e))?;
                return Ok(LocalCopy {
                    path,
                    record: rec,
                    outcome: Outcome::Stale,
                });
            }
            return Err(err);
        }
    };
    if kind == Kind::Folder && listed.is_empty() {
        return Err(Error::NotFound {
            given: given.into(),
            what: "no objects under this prefix".into(),
        });
    }
    let mut objects = Vec::with_capacity(listed.len());
    let mut bytes = 0;
    for (meta, rel) in relative_paths(&listed, &key, kind).map_err(|cause| Error::Store {
        given: given.into(),
        cause,
    })? {
        let last_modified =
            (meta.last_modified.timestamp() != 0).then(|| meta.last_modified.to_rfc3339());
        let known = cached
            .as_ref()
            .and_then(|r| r.objects.iter().find(|o| o.path == rel))
            .filter(|o| o.is_current(meta.size, meta.e_tag.as_deref(), last_modified.as_deref()));
        let sha256 = match known {
            Some(o) => o.sha256.clone(),
            None => {
                bytes += meta.size;
                on_download(meta.location.as_ref(), meta.size);
                download(cache, &*store, &meta.location)
                    .await
                    .map_err(|e| match e {
                        Download::Store(e) => Error::from_store(given, uri, e),
                        Download::Io(e) => Error::io(cache, e),
                    })?
            }
        };
        objects.push(ObjectRecord {
            path: rel,
            size: meta.size,
            etag: meta.e_tag.clone(),
            last_modified,
            sha256,
        });
    }
    let unchanged = cached.as_ref().is_some_and(|r| r.objects == objects);
    let record = match cached {
        Some(rec) if unchanged => rec,
        _ => {
            let rec = SourceRecord {
                uri: canonical,
                kind,
                objects,
                fetched_at: crate::store::now(),
            };
            cache.record(&rec).map_err(|e| Error::io(cache, e))?;
            rec
        }
    };
    let path = cache
        .materialize(&record)
        .map_err(|e| Error::io(cache, e))?;
    Ok(LocalCopy {
        path,
        record,
        outcome: if bytes == 0 && unchanged {
            Outcome::Current
        } else {
            Outcome::Fetched { bytes }
        },
    })
}

/// Each listed object with its path relative to the folder (`""` for a file), leaving out
/// S3's zero-byte "folder" markers (the prefix itself, or `sub/` beside `sub/x`). Pure.
fn relative_paths<'a>(
    listed: &'a [ObjectMeta],
    prefix: &StorePath,
    kind: Kind,
) -> Result<Vec<(&'a ObjectMeta, String)>, String> {
    if kind == Kind::File {
        return Ok(listed.iter().map(|m| (m, String::new())).collect());
    }
    let mut out = Vec::with_capacity(listed.len());
    for meta in listed {
        let parts: Option<Vec<String>> = meta
            .location
            .prefix_match(prefix)
            .map(|rest| rest.map(|p| p.as_ref().to_string()).collect());
        let Some(parts) = parts else {
            return Err(format!(
                "the store listed `{}`, which is not under `{prefix}`",
                meta.location
            ));
        };
        out.push((meta, parts.join("/")));
    }
    let dirs: Vec<String> = out
        .iter()
        .filter_map(|(_, rel)| rel.rsplit_once('/').map(|(d, _)| d.to_string()))
        .collect();
    out.retain(|(meta, rel)| {
        let marker = meta.size == 0
            && (rel.is_empty()
                || dirs
                    .iter()
                    .any(|d| d == rel || d.starts_with(&format!("{rel}/"))));
        !marker
    });
    Ok(out)
}

async fn head(store: &dyn ObjectStore, key: &StorePath) -> Result<ObjectMeta, object_store::Error> {
    if key.as_ref().is_empty() {
        return Err(object_store::Error::NotFound {
            path: String::new(),
            source: "a uri_file input names a file, not a folder".into(),
        });
    }
    store.head(key).await
}

async fn list(
    store: &dyn ObjectStore,
    prefix: &StorePath,
) -> Result<Vec<ObjectMeta>, object_store::Error> {
    let mut stream = store.list(Some(prefix));
    let mut out = Vec::new();
    while let Some(meta) = stream.next().await {
        out.push(meta?);
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

enum Download {
    Store(object_store::Error),
    Io(std::io::Error),
}

/// Stream one object into a temp file while hashing it, then land it as a blob.
async fn download(
    cache: &DataCache,
    store: &dyn ObjectStore,
    location: &StorePath,
) -> Result<String, Download> {
    let tmp = cache.temp_file().map_err(Download::Io)?;
    let mut file = tokio::fs::File::from_std(tmp.reopen().map_err(Download::Io)?);
    let mut stream = store
        .get(location)
        .await
        .map_err(Download::Store)?
        .into_stream();
    let mut hash = Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(Download::Store)?;
        hash.update(&chunk);
        file.write_all(&chunk).await.map_err(Download::Io)?;
    }
    file.flush().await.map_err(Download::Io)?;
    drop(file);
    let sha = crate::workspace::hex(&hash.finalize());
    cache.land_blob(tmp, &sha).map_err(Download::Io)?;
    Ok(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(key: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            location: StorePath::from(key),
            last_modified: Default::default(),
            size,
            e_tag: None,
            version: None,
        }
    }

    #[test]
    fn folder_markers_are_left_out_and_paths_are_relative() {
        let listed = [
            meta("raw/iris/", 0),
            meta("raw/iris/a.csv", 4),
            meta("raw/iris/sub", 0),
            meta("raw/iris/sub/b.csv", 4),
            meta("raw/iris/empty.txt", 0),
        ];
        let prefix = StorePath::from("raw/iris");
        let rels: Vec<String> = relative_paths(&listed, &prefix, Kind::Folder)
            .unwrap()
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        assert_eq!(
            rels,
            ["a.csv", "sub/b.csv", "empty.txt"],
            "an empty file is kept"
        );
        let outside = [meta("raw/other.csv", 1)];
        assert!(relative_paths(&outside, &prefix, Kind::Folder).is_err());
    }
}
