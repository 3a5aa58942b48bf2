//! The endpoint router: key auth and traffic split across an endpoint's deployments.

// STUB: replaced by the router work
pub fn main(args: Vec<std::ffi::OsString>) -> std::process::ExitCode {
    let _ = args;
    eprintln!("tug-infsrv router: not implemented yet");
    std::process::ExitCode::from(2)
}
