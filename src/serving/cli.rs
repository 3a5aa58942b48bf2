//! Command line of `tug-infsrv`.

pub fn main() -> std::process::ExitCode {
    eprintln!("tug-infsrv: not implemented yet");
    std::process::ExitCode::from(2)
}
