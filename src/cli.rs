//! Command-line definitions (clap derive) and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::binfmt::DEFAULT_DIR;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the check found a problem (a damaged file, a file not of the expected platform, …)
  2  bad input: unknown architecture, bad flag, unreadable file or table
  3  environment: not permitted, binfmt_misc unavailable

Architecture names: Docker/OCI's (amd64, arm64, arm/v7, ppc64le, riscv64, …), QEMU's
(aarch64, x86_64, mips64el, …), Debian's (armhf, armel, ppc64el, i386, …) or platform
strings (linux/arm64). An unknown name is refused with the list of known ones.";

#[derive(Debug, Parser)]
#[command(
    name = "binfmt-setup",
    version,
    about = "Run, build and debug programs of other CPU architectures",
    long_about = "binfmt-setup names the platform of executables, registers QEMU user-mode \
                  interpreters in binfmt_misc, proves they work, and explains why a program \
                  will not run.",
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The binfmt_misc directory to read and change.
    #[arg(long, global = true, env = "BINFMT_SETUP_DIR", default_value = DEFAULT_DIR, value_name = "DIR")]
    pub binfmt_dir: PathBuf,

    /// Replace the built-in architecture table with FILE (same format as configs/arches.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub arch_table: Option<PathBuf>,

    /// Look for QEMU interpreters in DIR (repeatable; default /usr/bin, /usr/local/bin,
    /// /usr/libexec/qemu-binfmt), as qemu-<cpu>-static, then qemu-<cpu>.
    #[arg(long, global = true, value_name = "DIR")]
    pub qemu_path: Vec<PathBuf>,

    /// Print one JSON document on stdout and nothing else there.
    #[arg(long, global = true)]
    pub json: bool,

    /// More detail on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Name the format and platform of each file, and whether this host can run it.
    #[command(after_help = "\
Examples:
  binfmt-setup inspect /bin/ls ./build/server
  binfmt-setup inspect --json ./server | jq -r '.[0].platform'
  binfmt-setup inspect --expect linux/arm64 ./out/*    # exit 1 if any file is not arm64

`runnable` is `native` when the kernel runs the file itself, `emulated` when a binfmt_misc \
handler takes it (the one the kernel would pick: the newest enabled entry that matches), \
and `no` otherwise, with the reason.")]
    Inspect(InspectArgs),

    /// Show binfmt_misc's state and every entry, ours and others'.
    #[command(after_help = "\
`owned` entries are named qemu-<cpu> for a cpu in the architecture table; others (Rosetta, \
FEX, box64, jar, Wine, a distribution's own names) are listed and never changed. \
`supported` and `emulators` have the meaning tonistiigi/binfmt gives them.")]
    Status,

    /// Register QEMU interpreters for architectures in binfmt_misc.
    #[command(after_help = "\
Examples:
  binfmt-setup install --arch arm64,riscv64
  binfmt-setup install --arch all --dry-run          # print the register strings only
  binfmt-setup install --arch arm --interpreter arm=/opt/qemu/bin/qemu-arm-static

Entries are named qemu-<cpu> and registered with F (the interpreter is opened now and used \
inside every container and chroot; it must be statically linked). Running it again changes \
nothing. The host's own architecture, and any it runs natively, are skipped. An entry of \
another owner whose rule overlaps is reported and left alone unless --replace-foreign. If \
one registration fails, everything this run changed is undone (exit 1).")]
    Install(InstallArgs),

    /// Remove our qemu-<cpu> entries (or one named entry of any owner with --name).
    Uninstall(UninstallArgs),

    /// Find programs of the wrong platform in a root file system, a tar, or an OCI image.
    #[command(after_help = "\
Examples:
  binfmt-setup scan ./rootfs                          # expected: what most programs are
  binfmt-setup scan --platform linux/arm64 rootfs.tar.gz
  binfmt-setup scan ./oci-layout                      # each image of the index, its own platform
  docker save myimage -o img.tar && binfmt-setup scan img.tar
  binfmt-setup scan --json ./oci-layout | jq '.mismatches[]'

PATH is a directory (a root file system), a tar stream (plain, gzip or zstd: a layer, an \
export, docker save output) or an OCI image layout (a directory with index.json). The \
expected platform is --platform, else the image config's, else the one most ELF programs \
have (reported as inferred). arm/v7 runs v5 and v6 programs; arm64 does not run arm ones. \
Symlinks are never followed, FIFOs and devices never opened, nothing is extracted, and a \
file deleted by an upper layer's whiteout is not reported.

Exit 1 when a program does not match, an ELF file is damaged or a file cannot be read; 0 \
when everything fits; 2 for a missing or malformed PATH or an unknown platform.")]
    Scan(ScanArgs),
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Architectures, comma-separated, or `all` (every one QEMU can emulate here).
    #[arg(long, value_name = "LIST")]
    pub arch: String,

    /// Use PATH as the interpreter for ARCH (repeatable).
    #[arg(long, value_name = "ARCH=PATH")]
    pub interpreter: Vec<String>,

    /// Register without F: the interpreter path is then opened at each exec and must exist
    /// inside containers and chroots.
    #[arg(long)]
    pub no_fix_binary: bool,

    /// Add C: setuid programs run with their own credentials through the interpreter. Only
    /// for a root-owned interpreter that group and others cannot write.
    #[arg(long)]
    pub credential: bool,

    /// Print the register strings and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Remove other owners' entries whose rules overlap ours, instead of skipping the arch.
    #[arg(long)]
    pub replace_foreign: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["arch", "name"]))]
pub struct UninstallArgs {
    /// Architectures, comma-separated, or `all`: removes only entries named qemu-<cpu>.
    #[arg(long, value_name = "LIST")]
    pub arch: Option<String>,

    /// Remove the entry with exactly this name, whoever registered it.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Files to inspect.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Fail (exit 1) unless every file is a program of this architecture or platform.
    #[arg(long, value_name = "ARCH")]
    pub expect: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// A root file system directory, a tar (.tar, .tar.gz, .tar.zst) or an OCI image layout.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,

    /// The platform every program must have (linux/arm64, arm/v7, armhf, …); default: the
    /// image config's, else the one most programs have.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
}

#[cfg(test)]
mod scan_tests {
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
        assert!(Cli::try_parse_from(["binfmt-setup", "scan"]).is_err());
    }
}

#[cfg(test)]
mod tests {
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
        assert!(a.dry_run && !a.credential && a.interpreter == ["arm=/x"]);
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
}
