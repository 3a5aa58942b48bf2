//! The CLI's side of the HTTP API, and starting a server when none answers.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::server::ServerInfo;
use crate::workspace::Workspace;

/// How long an auto-started server lingers with nothing to do (`TUG_IDLE_TIMEOUT`
/// seconds overrides).
pub const DEFAULT_IDLE_SECONDS: u64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("cannot reach the tug server at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the tug server did not come up within {0:?}; its log is {1}")]
    StartTimeout(Duration, String),
    #[error("the tug server exited ({status}) before it answered; the end of {log}:\n{tail}")]
    ServerExited {
        status: String,
        log: String,
        tail: String,
    },
    #[error("cannot start a tug server: {0}")]
    Spawn(std::io::Error),
    #[error("workspace: {0}")]
    Workspace(#[from] crate::workspace::Error),
    #[error("unexpected answer from the server: {0}")]
    Decode(reqwest::Error),
}

/// A connection to the workspace's server.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    pub info: ServerInfo,
    token: String,
}

fn read_info(ws: &Workspace) -> Option<ServerInfo> {
    let text = std::fs::read_to_string(ws.server_file()).ok()?;
    serde_json::from_str(&text).ok()
}

impl Client {
    /// Connects to the running server, if one answers.
    pub async fn existing(ws: &Workspace) -> Result<Option<Client>, Error> {
        let token = ws.token()?;
        let Some(info) = read_info(ws) else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let client = Client { http, info, token };
        let alive = client
            .http
            .get(client.url("/api/health"))
            .bearer_auth(&client.token)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        Ok(alive.then_some(client))
    }

    /// Connects to the server, starting one in the background when none answers.
    /// A lock makes concurrent CLIs start only one.
    pub async fn connect(ws: &Workspace) -> Result<Client, Error> {
        ws.create()?;
        if let Some(c) = Client::existing(ws).await? {
            return Ok(c);
        }
        let ws2 = ws.clone();
        let lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(ws2.spawn_lock())?;
            f.lock()?;
            Ok(f)
        })
        .await
        .expect("lock task")
        .map_err(Error::Spawn)?;
        // Another CLI may have started one while we waited for the lock. A server holds
        // its own lock for as long as it lives: while one does, it is starting or merely
        // slow to answer (a loaded machine), so wait for it rather than start a second one
        // that could only give up.
        let limit = Duration::from_secs(90);
        let start = Instant::now();
        loop {
            if let Some(c) = Client::existing(ws).await? {
                return Ok(c);
            }
            if !server_holds_lock(ws) || start.elapsed() >= limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut child = spawn_server(ws)?;
        // Generous: a server that is alive but slow (a busy engine answers its first calls
        // late on 2 cores) is worth waiting for; one that exits is reported at once below.
        let start = Instant::now();
        while start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(c) = Client::existing(ws).await? {
                drop(lock);
                // Reap it if it exits while we still run, so it never lingers as a zombie
                // (which would look alive to `tug server stop`).
                std::thread::spawn(move || child.wait());
                return Ok(c);
            }
            // A server that exits before it answers will never answer: say why now.
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::ServerExited {
                    status: status.to_string(),
                    log: ws.server_log().display().to_string(),
                    tail: log_tail(&ws.server_log(), 5),
                });
            }
        }
        Err(Error::StartTimeout(
            limit,
            ws.server_log().display().to_string(),
        ))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.info.url)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| Error::Unreachable {
                url: self.info.url.clone(),
                source,
            })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_string))
            .unwrap_or(text);
        Err(Error::Api { status, message })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.send(self.http.get(self.url(path)))
            .await?
            .json()
            .await
            .map_err(Error::Decode)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        self.send(self.http.post(self.url(path)).json(body))
            .await?
            .json()
            .await
            .map_err(Error::Decode)
    }

    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, Error> {
        self.send(
            self.http
                .post(self.url(path))
                .header("content-type", "application/x-tar")
                .body(body),
        )
        .await?
        .json()
        .await
        .map_err(Error::Decode)
    }

    /// `method` with a JSON body (PUT, PATCH); `T` from the JSON answer.
    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        self.send(self.http.request(method, self.url(path)).json(body))
            .await?
            .json()
            .await
            .map_err(Error::Decode)
    }

    /// DELETE; succeeds on any 2xx.
    pub async fn delete(&self, path: &str) -> Result<(), Error> {
        self.send(self.http.delete(self.url(path)))
            .await
            .map(|_| ())
    }

    /// A response to read as a stream (job streams, downloads).
    pub async fn get_raw(&self, path: &str) -> Result<reqwest::Response, Error> {
        self.send(self.http.get(self.url(path))).await
    }

    /// Asks the server to exit.
    pub async fn stop_server(&self) -> Result<(), Error> {
        self.send(self.http.post(self.url("/api/server/stop")))
            .await
            .map(|_| ())
    }
}

/// Whether a server process holds the workspace's server lock (it does from start to exit).
fn server_holds_lock(ws: &Workspace) -> bool {
    let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(ws.server_lock())
    else {
        return false;
    };
    // Taking it means nobody held it; it is let go again when `f` drops.
    matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Starts `tug server` detached: its own session, no terminal, output to the
/// workspace's server.log, exiting by itself once idle.
fn spawn_server(ws: &Workspace) -> Result<std::process::Child, Error> {
    let exe = std::env::current_exe().map_err(Error::Spawn)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ws.server_log())
        .map_err(Error::Spawn)?;
    let idle = std::env::var("TUG_IDLE_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_IDLE_SECONDS);
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["server", "--idle-timeout", &idle.to_string()])
        .env(crate::workspace::WORKSPACE_ENV, &ws.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(Error::Spawn)?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(Error::Spawn)?;
    tracing::debug!(pid = child.id(), "started a background tug server");
    // It outlives us; once we exit, init reaps it.
    Ok(child)
}

/// The last `n` lines of a text file, indented, for error messages.
fn log_tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Percent-encodes a path segment or query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `/api/<kind>/<name>`, with `?version=` when one is asked for (else the latest).
pub fn asset_path(kind: &str, name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("/api/{kind}/{}?version={}", urlencode(name), urlencode(v)),
        None => format!("/api/{kind}/{}", urlencode(name)),
    }
}
