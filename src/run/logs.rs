//! Following a run's container log: user lines to `user_logs/std_log.txt`, metric
//! records to the store, and a cursor so a restarted server resumes without repeats.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;

use crate::run::frame::{Record, split_line};
use crate::store::Store;

/// How often buffered metrics and the log cursor are written while a run streams.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How often watchers are woken for new log lines at most.
const WAKE_EVERY: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the run log {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

fn masked(
    masker: &crate::secrets::Masker,
    values: BTreeMap<String, String>,
) -> impl Iterator<Item = (String, String)> + '_ {
    values
        .into_iter()
        .map(|(k, v)| (k, masker.mask(&v).into_owned()))
}

/// Copies a run's log to `std_log.txt` and its metric records to the store, with secret
/// values masked in both.
pub(crate) async fn follow(
    mut stream: crate::compute::LogStream,
    store: Arc<Store>,
    id: &str,
    nonce: &str,
    path: &Path,
    committed_bytes: u64,
    masker: &crate::secrets::Masker,
) -> Result<(), Error> {
    let io = |e| Error::File {
        path: path.to_path_buf(),
        source: e,
    };
    std::fs::create_dir_all(path.parent().unwrap()).map_err(io)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    // Lines written after the last commit will be read again from the cursor.
    if file.metadata().map_err(io)?.len() > committed_bytes {
        file.set_len(committed_bytes).map_err(io)?;
    }
    let mut written = committed_bytes;
    let mut metrics = Vec::new();
    let mut params = BTreeMap::new();
    let mut tags = BTreeMap::new();
    let mut cursor: Option<String> = None;
    let mut last_flush = Instant::now();
    let now_secs = || {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    };
    // Stream watchers are woken soon after lines land in the file, not only when the
    // next batch is committed.
    let mut unseen = false;
    let mut last_wake = Instant::now();
    loop {
        let wait = if unseen { WAKE_EVERY } else { FLUSH_EVERY };
        let next = tokio::time::timeout(wait, stream.next()).await;
        let done = match next {
            Ok(Some(Ok(line))) => {
                let split = split_line(&line.text, nonce);
                if let Some(text) = split.text {
                    // Secret values never reach the kept (and streamed) log.
                    let text = masker.mask(text);
                    file.write_all(text.as_bytes())
                        .and_then(|_| file.write_all(b"\n"))
                        .map_err(io)?;
                    written += text.len() as u64 + 1;
                    unseen = true;
                }
                match split.record {
                    Some(Ok(Record::Metric {
                        name,
                        value,
                        step,
                        ts,
                    })) => {
                        if let Some(v) = value.as_f64() {
                            metrics.push((name, step, v, ts.unwrap_or_else(now_secs)));
                        }
                    }
                    Some(Ok(Record::Params { values })) => params.extend(masked(masker, values)),
                    Some(Ok(Record::Tags { values })) => tags.extend(masked(masker, values)),
                    Some(Err(e)) => {
                        tracing::warn!(run = %id, error = %e, "unreadable metric record")
                    }
                    None => {}
                }
                cursor = Some(line.ts);
                false
            }
            Ok(Some(Err(e))) => {
                tracing::warn!(run = %id, error = %e, "log stream error");
                true
            }
            Ok(None) => true,
            Err(_) => false, // quiet period: flush and wake below
        };
        if unseen && last_wake.elapsed() >= WAKE_EVERY {
            store.notify();
            unseen = false;
            last_wake = Instant::now();
        }
        if done || last_flush.elapsed() >= FLUSH_EVERY || metrics.len() >= 500 {
            if cursor.is_some() || !metrics.is_empty() {
                let _ = file.flush();
                store.record_log_batch(
                    id,
                    &metrics,
                    &params,
                    &tags,
                    cursor.as_deref().map(|c| (c, written)),
                )?;
                metrics.clear();
                params.clear();
                tags.clear();
                cursor = None;
            }
            last_flush = Instant::now();
        }
        if done {
            return Ok(());
        }
    }
}
