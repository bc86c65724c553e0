//! The command line parses as documented.

use super::*;
use clap::CommandFactory;

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn inspect_takes_files_and_expect() {
    let cli = Cli::try_parse_from(["binfmt-setup", "inspect", "--expect", "arm64", "a", "b"])
        .expect("parse");
    let Command::Inspect(args) = cli.command else {
        panic!("not inspect")
    };
    assert_eq!(args.files.len(), 2);
    assert_eq!(args.expect.as_deref(), Some("arm64"));
    assert!(Cli::try_parse_from(["binfmt-setup", "inspect"]).is_err());
}

#[test]
fn install_and_uninstall_flags() {
    let cli = Cli::try_parse_from([
        "binfmt-setup",
        "install",
        "--arch",
        "all",
        "--dry-run",
        "--interpreter",
        "arm=/x",
    ])
    .expect("parse");
    let Command::Install(a) = cli.command else {
        panic!("not install")
    };
    assert!(a.dry_run && !a.handler.credential && a.handler.interpreter == ["arm=/x"]);
    assert!(
        Cli::try_parse_from(["binfmt-setup", "install"]).is_err(),
        "--arch is required"
    );
    assert!(
        Cli::try_parse_from(["binfmt-setup", "uninstall"]).is_err(),
        "--arch or --name"
    );
    assert!(Cli::try_parse_from(["binfmt-setup", "uninstall", "--name", "x"]).is_ok());
}

#[test]
fn export_takes_a_format_and_defaults_to_all() {
    let cli = Cli::try_parse_from(["binfmt-setup", "export", "--format", "debian"]).expect("parse");
    let Command::Export(a) = cli.command else {
        panic!("not export")
    };
    assert_eq!(
        (a.format, a.arch.as_str()),
        (crate::export::Format::Debian, "all")
    );
    assert!(
        Cli::try_parse_from(["binfmt-setup", "export"]).is_err(),
        "--format is required"
    );
    assert!(Cli::try_parse_from(["binfmt-setup", "export", "--format", "rpm"]).is_err());
}

#[test]
fn run_takes_everything_after_the_separator_as_the_command() {
    let cli = Cli::try_parse_from([
        "binfmt-setup",
        "run",
        "--rootfs",
        "/r",
        "--",
        "sh",
        "-c",
        "exit 7",
        "--json",
    ])
    .expect("parse");
    let Command::Run(a) = cli.command else {
        panic!("not run")
    };
    assert_eq!(a.arch, "all");
    assert_eq!(a.rootfs, Some(PathBuf::from("/r")));
    assert_eq!(a.command, ["sh", "-c", "exit 7", "--json"]);
    assert!(
        !cli.global.json,
        "--json after the command is the command's"
    );
    assert!(
        Cli::try_parse_from(["binfmt-setup", "run", "--"]).is_err(),
        "a command is required"
    );
}

#[test]
fn diagnose_takes_one_target_root_and_run() {
    let cli = Cli::try_parse_from(["binfmt-setup", "diagnose", "--root", "/r", "--run", "sh"])
        .expect("parse");
    let Command::Diagnose(a) = cli.command else {
        panic!("not diagnose")
    };
    assert_eq!(
        (a.target.as_str(), a.root, a.run, a.timeout),
        ("sh", Some(PathBuf::from("/r")), true, 10)
    );
    assert!(
        Cli::try_parse_from(["binfmt-setup", "diagnose"]).is_err(),
        "a target is required"
    );
}

#[test]
fn init_takes_a_config_and_keep_running() {
    let cli = Cli::try_parse_from([
        "binfmt-setup",
        "init",
        "--config",
        "/c.toml",
        "--keep-running",
    ])
    .expect("parse");
    let Command::Init(a) = cli.command else {
        panic!("not init")
    };
    assert_eq!(a.config, Some(PathBuf::from("/c.toml")));
    assert!(a.keep_running);
}

#[test]
fn global_flags_anywhere() {
    let cli = Cli::try_parse_from([
        "binfmt-setup",
        "inspect",
        "x",
        "--json",
        "--binfmt-dir",
        "/tmp/b",
    ])
    .expect("parse");
    assert!(cli.global.json);
    assert_eq!(cli.global.binfmt_dir, PathBuf::from("/tmp/b"));
}
