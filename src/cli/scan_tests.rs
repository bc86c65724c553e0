//! The scan command's arguments.

use super::*;

#[test]
fn scan_takes_a_path_and_a_platform() {
    let cli = Cli::try_parse_from(["binfmt-setup", "scan", "--platform", "arm64", "root"])
        .expect("parse");
    let Command::Scan(args) = cli.command else {
        panic!("not scan")
    };
    assert_eq!(args.path, PathBuf::from("root"));
    assert_eq!(args.platform.as_deref(), Some("arm64"));
    assert!(args.tls_verify, "checked unless told");
    assert!(Cli::try_parse_from(["binfmt-setup", "scan"]).is_err());
    let cli = Cli::try_parse_from([
        "binfmt-setup",
        "scan",
        "--tls-verify=false",
        "--creds",
        "u:p",
        "docker://h/r:1",
    ])
    .expect("parse");
    let Command::Scan(args) = cli.command else {
        panic!("not scan")
    };
    assert!(!args.tls_verify);
    assert_eq!(args.creds.as_deref(), Some("u:p"));
}
