//! Live view of one run as newline-delimited JSON events: status changes, build
//! output, log lines and metric points, ending with the final status.
//!
//! It reads what the run leaves in the store and its log files, so a stream shows the
//! same thing whether the run started in this server process or an earlier one.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::api::ApiError;
use super::{AppState, Busy};

const POLL: Duration = Duration::from_millis(150);

/// One event of a job stream.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StreamEvent {
    Status {
        status: String,
    },
    Build {
        line: String,
    },
    Log {
        line: String,
    },
    Metric {
        name: String,
        step: i64,
        value: f64,
        /// Position in the store; `?after=` resumes after it.
        #[serde(default)]
        row: i64,
    },
    End {
        status: String,
        error: Option<String>,
    },
}

/// Reads lines appended to a file since the last call.
struct Tail {
    path: std::path::PathBuf,
    offset: u64,
    /// Bytes after the last newline: a line (or a character) still being written.
    partial: Vec<u8>,
    /// Lines the client already has (a resumed stream).
    skip: usize,
}

impl Tail {
    fn new(path: std::path::PathBuf, skip: usize) -> Tail {
        Tail {
            path,
            offset: 0,
            partial: Vec::new(),
            skip,
        }
    }

    fn read(&mut self) -> Vec<String> {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return vec![];
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return vec![];
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return vec![];
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        // Decode whole lines only, so a character split across two reads stays whole.
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return vec![];
        };
        let rest = self.partial.split_off(end + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        let mut lines: Vec<String> = String::from_utf8_lossy(&done[..done.len() - 1])
            .split('\n')
            .map(str::to_string)
            .collect();
        let skipped = self.skip.min(lines.len());
        self.skip -= skipped;
        lines.split_off(skipped)
    }

    /// What is left without a newline (at the end of the run).
    fn rest(&mut self) -> Option<String> {
        (!self.partial.is_empty())
            .then(|| String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned())
    }
}

/// Where a resumed stream picks up: lines and metric rows the client already has.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Resume {
    #[serde(default)]
    logs: usize,
    #[serde(default)]
    build: usize,
    #[serde(default)]
    after: i64,
    #[serde(default)]
    statuses: usize,
}

pub(crate) async fn stream_job(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    axum::extract::Query(resume): axum::extract::Query<Resume>,
) -> Result<Response, ApiError> {
    s.runner.store.run(&id)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let state = s.clone();
    let Some(busy) = Busy::new(&s) else {
        return Err(ApiError::unavailable());
    };
    tokio::spawn(async move {
        let _busy = busy;
        let mut closing = state.closing.subscribe();
        let mut changes = state.runner.store.subscribe();
        let runner = &state.runner;
        let run_dir = runner.ws.run_dir(&id);
        let mut build = Tail::new(runner.build_log(&id), resume.build);
        let mut log = Tail::new(run_dir.join("user_logs/std_log.txt"), resume.logs);
        let mut statuses_seen = resume.statuses;
        let mut metric_row = resume.after;
        loop {
            let Ok(run) = runner.store.run(&id) else {
                return;
            };
            let mut events = Vec::new();
            // Every transition in order, even several between two wake-ups.
            if let Ok(history) = runner.store.events(&id) {
                for (status, _, _) in history.into_iter().skip(statuses_seen) {
                    statuses_seen += 1;
                    events.push(StreamEvent::Status { status });
                }
            }
            events.extend(
                build
                    .read()
                    .into_iter()
                    .map(|line| StreamEvent::Build { line }),
            );
            events.extend(log.read().into_iter().map(|line| StreamEvent::Log { line }));
            if let Ok(points) = runner.store.metrics(&id, None, metric_row) {
                for (row, p) in points {
                    metric_row = row;
                    events.push(StreamEvent::Metric {
                        name: p.name,
                        step: p.step,
                        value: p.value,
                        row,
                    });
                }
            }
            let done = run.status.is_terminal();
            if done {
                if let Some(line) = log.rest() {
                    events.push(StreamEvent::Log { line });
                }
                events.push(StreamEvent::End {
                    status: run.status.as_str().to_string(),
                    error: run.error.clone(),
                });
            }
            for e in events {
                let mut line = serde_json::to_string(&e).expect("events serialize");
                line.push('\n');
                if tx.send(Ok(line)).await.is_err() {
                    return; // the client went away
                }
            }
            if done {
                return;
            }
            // A closing server ends the stream without `end`; the client reconnects.
            // Woken by the store on any change; the timer covers log lines written
            // between two commits.
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = closing.wait_for(|c| *c) => return,
            }
        }
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tail_keeps_characters_whole_across_reads_and_skips_seen_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut f = std::fs::File::create(&path).unwrap();
        let mut tail = Tail::new(path.clone(), 1);
        let text = "seen\nnaïve café\n".as_bytes();
        // Cut inside the two-byte `ï`.
        let cut = text.iter().position(|b| *b == 0xc3).unwrap() + 1;
        f.write_all(&text[..cut]).unwrap();
        assert!(tail.read().is_empty(), "the first line is skipped");
        f.write_all(&text[cut..]).unwrap();
        assert_eq!(tail.read(), ["naïve café"]);
        f.write_all(b"unfinished").unwrap();
        assert!(tail.read().is_empty());
        assert_eq!(tail.rest().as_deref(), Some("unfinished"));
    }
}
