use std::process::ExitCode;

use binfmt_setup::cli::Cli;
use binfmt_setup::error::Exit;
use binfmt_setup::{commands, messages};
use clap::Parser;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version exit 0; every usage error is bad input.
            let _ = e.print();
            return if e.use_stderr() {
                Exit::BadInput.into()
            } else {
                Exit::Success.into()
            };
        }
    };
    init_tracing(cli.global.verbose, cli.global.quiet);
    messages::set_quiet(cli.global.quiet);
    match commands::run(cli) {
        Ok(exit) => exit.into(),
        Err(failure) => {
            messages::error(&failure.to_string());
            failure.exit.into()
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BINFMT_SETUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
