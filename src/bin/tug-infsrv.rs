//! `tug-infsrv`: the Azure ML inference-server contract in front of Python workers.

fn main() -> std::process::ExitCode {
    tug::serving::cli::main()
}
