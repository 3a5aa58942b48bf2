//! The Python helper shipped into every environment image (`images/python`): its own
//! unittest suite, run here so `cargo test` covers it.

mod common;

use std::process::Command;

#[test]
fn python_helper_unit_tests_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "images/python/tests"])
        .current_dir(root)
        .output()
        .expect("python3 is needed to test the helper");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("OK"), "{stderr}");
}

/// The scoring worker shim (`images/serving`): its suite drives real worker processes over
/// the framed socket exactly as `tug-infsrv` does.
#[test]
fn scoring_worker_unit_tests_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "images/serving/tests",
            "-p",
            "test_*.py",
        ])
        .current_dir(root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 is needed to test the worker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("OK"), "{stderr}");
}

/// The tracking relay a tunnelled run's pod runs (`src/compute/kubernetes/relay.py`),
/// driven over real sockets the way the server's tunnel and an MLflow client use it.
#[test]
fn the_tracking_relay_pairs_each_client_with_one_server_connection() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    let (job_port, host_port) = (common::free_port(), common::free_port());
    let mut relay = Command::new("python3")
        .args(["-c", tug::compute::kubernetes::objects::RELAY_PY])
        .env("TUG_RELAY_JOB_PORT", job_port.to_string())
        .env("TUG_RELAY_HOST_PORT", host_port.to_string())
        .env("TUG_RELAY_WAIT_SECONDS", "2")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let connect = |port: u16| {
        let start = Instant::now();
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    return s;
                }
                Err(_) if start.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("the relay does not listen on {port}: {e}"),
            }
        }
    };
    let read_some = |s: &mut TcpStream| {
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        buf[..n].to_vec()
    };
    // Bytes may arrive in any split: read until `n` have come (or the peer closed).
    let read_n = |s: &mut TcpStream, n: usize| {
        let mut got = Vec::new();
        while got.len() < n {
            let more = read_some(s);
            if more.is_empty() {
                break;
            }
            got.extend(more);
        }
        got
    };
    // The job port listens once the server port does (both bound before serving).
    let dead = connect(host_port);
    drop(dead); // an idle connection that ended: skipped, not paired
    std::thread::sleep(Duration::from_millis(200));
    let mut server = connect(host_port);
    let mut client = connect(job_port);
    client.write_all(b"GET /").unwrap();
    assert_eq!(
        read_n(&mut server, 6),
        b"\x01GET /",
        "the pairing is announced first"
    );
    server.write_all(b"200 OK").unwrap();
    assert_eq!(read_n(&mut client, 6), b"200 OK");
    drop(client);
    assert_eq!(
        read_some(&mut server),
        b"",
        "the client's close reaches the server"
    );

    // A client that comes first waits for the server's next connection.
    let mut client = connect(job_port);
    client.write_all(b"early").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut server = connect(host_port);
    assert_eq!(read_n(&mut server, 6), b"\x01early");
    drop(server);
    assert_eq!(
        read_some(&mut client),
        b"",
        "the server's close reaches the client"
    );

    // With no server connection at all, the client is closed after the wait, and told why.
    let mut client = connect(job_port);
    let start = Instant::now();
    assert_eq!(read_some(&mut client), b"");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    relay.kill().unwrap();
    let out = relay.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no connection from tug's server within 2 s"),
        "{stderr}"
    );
}
