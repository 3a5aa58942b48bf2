//! Command line of `tug-infsrv`.

use std::ffi::OsString;

pub fn main() -> std::process::ExitCode {
    // Minimal dispatch until the scoring front's CLI lands: `tug-infsrv router ...` runs the
    // endpoint router, with argv from `router` on.
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|first| first == "router") {
        return super::router::main(args[1..].to_vec());
    }
    eprintln!("tug-infsrv: not implemented yet");
    std::process::ExitCode::from(2)
}
