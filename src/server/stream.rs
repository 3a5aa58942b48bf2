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
    partial: String,
}

impl Tail {
    fn new(path: std::path::PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            partial: String::new(),
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
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let mut lines: Vec<String> = self.partial.split('\n').map(str::to_string).collect();
        self.partial = lines.pop().unwrap_or_default();
        lines
    }
}

pub(crate) async fn stream_job(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    s.runner.store.run(&id)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let state = s.clone();
    tokio::spawn(async move {
        let _busy = Busy::new(&state);
        let runner = &state.runner;
        let run_dir = runner.ws.run_dir(&id);
        let mut build = Tail::new(runner.build_log(&id));
        let mut log = Tail::new(run_dir.join("user_logs/std_log.txt"));
        let mut last_status = String::new();
        let mut metric_row = 0i64;
        loop {
            let Ok(run) = runner.store.run(&id) else {
                return;
            };
            let mut events = Vec::new();
            if run.status.as_str() != last_status {
                last_status = run.status.as_str().to_string();
                events.push(StreamEvent::Status {
                    status: last_status.clone(),
                });
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
                    });
                }
            }
            let done = run.status.is_terminal();
            if done {
                if !log.partial.is_empty() {
                    events.push(StreamEvent::Log {
                        line: std::mem::take(&mut log.partial),
                    });
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
            tokio::time::sleep(POLL).await;
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
