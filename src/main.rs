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
            if !e.use_stderr() {
                let _ = e.print();
                return Exit::Success.into();
            }
            if json_asked(std::env::args_os()) {
                messages::json_error(Exit::BadInput, first_line(&e.to_string()));
            }
            let _ = e.print();
            return Exit::BadInput.into();
        }
    };
    init_tracing(cli.global.verbose, cli.global.quiet);
    messages::set_quiet(cli.global.quiet);
    let json = cli.global.json && !matches!(cli.command, binfmt_setup::cli::Command::Run(_));
    match commands::run(cli) {
        Ok(exit) => exit.into(),
        Err(failure) => {
            let message = failure.to_string();
            if json {
                messages::json_error(failure.exit, &message);
            }
            messages::error(&message);
            failure.exit.into()
        }
    }
}

/// Whether `--json` is among the options (not after `--`, where `run`'s command begins),
/// read from the raw arguments when clap could not parse them.
fn json_asked(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// clap's message without its "error: " prefix and usage lines.
fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line)
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    // Other crates' own logs (the HTTP and TLS stacks log what our errors already say) only
    // from -vv on.
    let others = if verbose >= 2 { level } else { "off" };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("BINFMT_SETUP_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("{others},binfmt_setup={level}"))
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
