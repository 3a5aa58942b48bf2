//! Following a job live: status changes, build progress on a spinner, the log, and
//! metrics as the script logs them.

use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use super::job::urlencode;
use super::output::{Format, number};
use crate::client::Client;
use crate::server::stream::StreamEvent;

/// Streams job `id` to the terminal until it ends. Exit code 1 when it did not complete.
pub(crate) async fn follow(client: &Client, id: &str, format: Format) -> anyhow::Result<ExitCode> {
    let resp = client
        .get_raw(&format!("/api/jobs/{}/stream", urlencode(id)))
        .await?;
    let mut body = resp.bytes_stream();
    let mut buf = Vec::new();
    let interactive =
        format == Format::Table && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut spinner: Option<ProgressBar> = None;
    let mut last = None;
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk?);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let event: StreamEvent = serde_json::from_slice(&line)?;
            if format != Format::Table {
                // Machine-readable: one JSON event per line.
                print!("{}", String::from_utf8_lossy(&line));
            } else {
                if !matches!(event, StreamEvent::Build { .. })
                    && let Some(sp) = spinner.take()
                {
                    sp.finish_and_clear();
                }
                match &event {
                    StreamEvent::Status { status } => {
                        eprintln!("[tug] {id}: {status}");
                    }
                    StreamEvent::Build { line } => {
                        if interactive {
                            let sp = spinner.get_or_insert_with(|| {
                                let sp = ProgressBar::new_spinner();
                                sp.set_style(
                                    ProgressStyle::with_template(
                                        "{spinner} building environment image: {wide_msg}",
                                    )
                                    .expect("valid template"),
                                );
                                sp.enable_steady_tick(Duration::from_millis(120));
                                sp
                            });
                            sp.set_message(line.clone());
                        } else if line.starts_with("Step ")
                            || line.starts_with("built ")
                            || line.starts_with("reused ")
                        {
                            eprintln!("[build] {line}");
                        }
                    }
                    StreamEvent::Log { line } => println!("{line}"),
                    StreamEvent::Metric { name, step, value } => {
                        eprintln!("[metric] {name} = {} (step {step})", number(*value));
                    }
                    StreamEvent::End { error, .. } => {
                        if let Some(e) = error {
                            eprintln!("[tug] {e}");
                        }
                    }
                }
            }
            if let StreamEvent::End { status, .. } = event {
                last = Some(status);
            }
        }
    }
    if let Some(sp) = spinner {
        sp.finish_and_clear();
    }
    match last.as_deref() {
        Some("Completed") => {
            if format == Format::Table {
                eprintln!("[tug] outputs: tug job download {id}   details: tug job show {id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(_) => Ok(ExitCode::FAILURE),
        None => anyhow::bail!(
            "the server closed the stream of job {id} before it ended; `tug job stream {id}` resumes"
        ),
    }
}
