//! Following a job live: status changes, build progress on a spinner, the log, and
//! metrics as the script logs them. A stream cut by a server restart is resumed where
//! it stopped, through a new server if need be.

use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use super::output::{Format, number};
use crate::client::Client;
use crate::client::urlencode;
use crate::server::stream::StreamEvent;
use crate::workspace::Workspace;

/// Reconnections in a row before giving up.
const MAX_RECONNECTS: u32 = 5;

/// What the terminal has shown so far.
#[derive(Default)]
struct Seen {
    logs: usize,
    build: usize,
    metric_row: i64,
    statuses: usize,
    status: String,
    end: Option<String>,
}

/// Streams job `id` to the terminal until it ends. Exit code 1 when it did not complete.
pub(crate) async fn follow(
    ws: &Workspace,
    mut client: Client,
    id: &str,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let mut seen = Seen::default();
    let mut failures = 0;
    loop {
        match follow_once(&client, id, format, &mut seen).await {
            Ok(()) if seen.end.is_some() => break,
            Ok(()) => {}
            Err(e) if failures >= MAX_RECONNECTS => return Err(e),
            Err(e) => tracing::debug!(error = %e, "job stream interrupted"),
        }
        failures += 1;
        if failures > MAX_RECONNECTS {
            anyhow::bail!(
                "lost the stream of job {id} {MAX_RECONNECTS} times; `tug job stream {id}` resumes it"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        client = Client::connect(ws).await?;
    }
    match seen.end.as_deref() {
        Some("Completed") => {
            if format == Format::Table {
                eprintln!("[tug] outputs: tug job download {id}   details: tug job show {id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        _ => Ok(ExitCode::FAILURE),
    }
}

/// One connection's worth of the stream; returns when it ends (with or without `end`).
async fn follow_once(
    client: &Client,
    id: &str,
    format: Format,
    seen: &mut Seen,
) -> anyhow::Result<()> {
    let resp = client
        .get_raw(&format!(
            "/api/jobs/{}/stream?logs={}&build={}&after={}&statuses={}",
            urlencode(id),
            seen.logs,
            seen.build,
            seen.metric_row,
            seen.statuses
        ))
        .await?;
    let mut body = resp.bytes_stream();
    let mut buf = Vec::new();
    let interactive =
        format == Format::Table && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut spinner: Option<ProgressBar> = None;
    let result = async {
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let event: StreamEvent = serde_json::from_slice(&line)?;
                show(&event, &line, id, format, interactive, &mut spinner, seen);
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Some(sp) = spinner {
        sp.finish_and_clear();
    }
    result
}

fn show(
    event: &StreamEvent,
    raw: &[u8],
    id: &str,
    format: Format,
    interactive: bool,
    spinner: &mut Option<ProgressBar>,
    seen: &mut Seen,
) {
    match event {
        StreamEvent::Status { status } => {
            seen.statuses += 1;
            if *status == seen.status {
                return;
            }
            seen.status = status.clone();
        }
        StreamEvent::Build { .. } => seen.build += 1,
        StreamEvent::Log { .. } => seen.logs += 1,
        StreamEvent::Metric { row, .. } => seen.metric_row = *row,
        StreamEvent::End { status, .. } => seen.end = Some(status.clone()),
    }
    if format != Format::Table {
        // Machine-readable: one JSON event per line.
        print!("{}", String::from_utf8_lossy(raw));
        return;
    }
    if !matches!(event, StreamEvent::Build { .. })
        && let Some(sp) = spinner.take()
    {
        sp.finish_and_clear();
    }
    match event {
        StreamEvent::Status { status } => eprintln!("[tug] {id}: {status}"),
        StreamEvent::Build { line } => {
            if interactive {
                let sp = spinner.get_or_insert_with(|| build_spinner("building environment image"));
                sp.set_message(line.clone());
            } else if line.starts_with("Step ")
                || line.starts_with("built ")
                || line.starts_with("reused ")
            {
                eprintln!("[build] {line}");
            }
        }
        StreamEvent::Log { line } => println!("{line}"),
        StreamEvent::Metric {
            name, step, value, ..
        } => {
            eprintln!("[metric] {name} = {} (step {step})", number(*value));
        }
        StreamEvent::End { error, .. } => {
            if let Some(e) = error {
                eprintln!("[tug] {e}");
            }
        }
    }
}

/// Looks at parent run `id` (a sweep or a pipeline, `what`) every `poll` until it ends,
/// handing each view to `seen`; rides out a server restart (or idle exit) by connecting
/// again. The last view.
pub(crate) async fn poll_until_ended(
    ws: &Workspace,
    mut client: Client,
    id: &str,
    what: &str,
    poll: Duration,
    mut seen: impl FnMut(&crate::server::api::JobView),
) -> anyhow::Result<crate::server::api::JobView> {
    /// Failed looks in a row before giving up.
    const MAX_FAILURES: u32 = 10;
    let mut failures = 0;
    loop {
        match client
            .get::<crate::server::api::JobView>(&format!("/api/jobs/{}", urlencode(id)))
            .await
        {
            Ok(view) => {
                failures = 0;
                seen(&view);
                if view.run.status.is_terminal() {
                    return Ok(view);
                }
            }
            Err(e) => {
                failures += 1;
                if failures >= MAX_FAILURES {
                    return Err(anyhow::Error::from(e).context(format!(
                        "lost track of {what} {id}; `tug job stream {id}` resumes following it"
                    )));
                }
                tokio::time::sleep(poll).await;
                if let Ok(c) = Client::connect(ws).await {
                    client = c;
                }
                continue;
            }
        }
        tokio::time::sleep(poll).await;
    }
}

/// A followed run's exit code: 1 unless it completed.
pub(crate) fn exit_for(status: crate::run::model::RunStatus) -> ExitCode {
    if status == crate::run::model::RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A spinner showing a build's latest line after `what`.
pub(crate) fn build_spinner(what: &str) -> ProgressBar {
    let sp = ProgressBar::new_spinner();
    sp.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} {what}: {{wide_msg}}"))
            .expect("valid template"),
    );
    sp.enable_steady_tick(Duration::from_millis(120));
    sp
}

/// Whether progress may redraw in place: stderr is a terminal and no CI system says it
/// runs us (`CI` set, as GitHub, GitLab and most others do); else plain lines.
pub(crate) fn interactive_progress() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("CI").is_none_or(|v| v.is_empty() || v == "false")
}
