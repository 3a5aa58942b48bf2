//! The `tug` binary: everything lives in the library; see `tug::cli`.

fn main() -> std::process::ExitCode {
    tug::cli::main()
}
