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
  `run` exits with its command's status once the command has started.

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

    /// Replace the built-in table of known-bad QEMU versions with FILE (same format as
    /// configs/qemu-issues.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub qemu_table: Option<PathBuf>,

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

    /// Write the handlers install would register as files for systemd-binfmt or update-binfmts.
    #[command(after_help = "\
Examples:
  binfmt-setup export --format systemd --output /etc/binfmt.d     # then: systemd-binfmt
  binfmt-setup export --format debian --output /usr/share/binfmts # then: update-binfmts --import
  binfmt-setup export --format register --arch arm64              # the strings, on stdout

The files describe exactly the entries `install` makes with the same options (names \
qemu-<cpu>, the table's magic and mask, F unless --no-fix-binary), so the kernel holds the \
same handlers after a reboot. Files are named after the entry (qemu-aarch64.conf, \
qemu-aarch64): in /etc/binfmt.d a file of that name takes the place of the one \
qemu-user-static ships in /usr/lib/binfmt.d. Nothing is registered and binfmt_misc is not \
read. Without --output the files are printed, each after a `# file: NAME` line.")]
    Export(ExportArgs),

    /// Prove architectures run: execute each one's probe program through the kernel.
    #[command(after_help = "\
Examples:
  binfmt-setup test                      # every registered handler, plus the native arches
  binfmt-setup test --arch arm64,riscv64
  binfmt-setup test --binary ./build/server-arm64   # your own program, the same way
  binfmt-setup test --entry qemu-x86_64-ext         # through one entry (an extension rule)

Each probe is a static program of a few hundred bytes, generated for its architecture, that \
prints a token and its argv[0] and exits 42. All run at once through a real exec, by default \
as the only file of an empty chroot: only a handler with F (interpreter opened at \
registration) can run it there, as inside a container. Levels: 0 it ran, 1 it echoed its \
token, 2 it also kept its own argv[0] (a P handler, or native). A failure names its cause: \
no handler (Exec format error), a handler without F (No such file or directory in the \
chroot), an interpreter that is missing, crashes or exits early, or a timeout. Exit 1 when \
any architecture asked for fails.

Beside each probe, through the same handler: the arch's level probe (the highest \
instruction-set level it runs; where that stops short and a QEMU_CPU value is known to go \
higher, a second run with it proves or refutes it), and the interpreter's own answers to \
QEMU_VERSION=1 and QEMU_CPU=help (its version, CPU models and default model), with a \
warning when the version is a known-bad one (configs/qemu-issues.toml, or --qemu-table). The \
version and the second run's answer are kept for the boot, per static interpreter file (the \
one the kernel ran, seen through each probe's /proc/PID/exe), beside install's proofs \
(/run/binfmt-setup for root); -vv says which were kept.")]
    Test(TestArgs),

    /// Print the platforms this host is proven to run, comma-separated (for buildx --platform).
    #[command(after_help = "\
Example:
  docker buildx build --platform \"$(binfmt-setup platforms)\" .

The list is what `test` proves with its default set: the host's own platform, those the \
kernel runs itself, and every architecture whose handler passed its probe in an empty chroot.")]
    Platforms,

    /// Explain why a program will not run ("Exec format error" and its cousins), and the fix.
    #[command(after_help = diagnose_help())]
    Diagnose(DiagnoseArgs),

    /// Run a command with its own private binfmt_misc, as any user (Linux 6.7 or later).
    #[command(after_help = "\
Examples:
  binfmt-setup run -- ./build/server-arm64 --version
  binfmt-setup run --arch arm64 --rootfs ./alpine-arm64 -- /bin/sh -c 'uname -m'

The command runs as root of a new user namespace (no privilege on the host: your uid is \
0 there, and your subordinate ids from /etc/subuid and /etc/subgid are 1 and up when \
newuidmap and newgidmap exist, as buildah and podman need) with a new mount namespace and a \
fresh binfmt_misc in it, where the handlers for --arch are registered with F. The host's binfmt_misc is not read or changed. With --rootfs \
it runs chrooted there, with /proc and a minimal /dev (null, zero, full, random, urandom, \
tty) bound in, and the command is looked up in PATH inside the root.

Exit status: the command's own, or 128+N when a signal N ended it. Signals sent to \
binfmt-setup are passed on. Before the command starts: 2 for bad input (no such root, \
command not found), 3 when the kernel cannot give a private binfmt_misc (older than 6.7, \
user namespaces turned off), 1 when a handler could not be registered.")]
    Run(RunArgs),

    /// Container and boot step: mount binfmt_misc, install, test, export, optionally stay up.
    #[command(after_help = "\
Examples:
  binfmt-setup init                                   # every arch, F, tested
  binfmt-setup init --config /etc/binfmt-setup.toml
  binfmt-setup init --config /etc/binfmt-setup.toml --keep-running   # DaemonSet

The config (example: configs/binfmt-setup.toml) says which architectures, flags and \
interpreters to register, whether to test them by running each one's probe through the \
kernel, and where to export them. With --keep-running it stays up: every interval it \
registers again any entry that disappeared, it writes the readiness file once everything \
is installed and tested, and SIGTERM ends it with exit 0, leaving the handlers in place \
unless the config says on_sigterm = \"uninstall\".

Exit codes: 0 everything installed (and tested); 1 a registration or a test failed; 2 bad \
config (the key and line are named); 3 binfmt_misc cannot be mounted or written.")]
    Init(InitArgs),
    /// Find programs of the wrong platform in a root file system, a tar, or an image: on
    /// disk, in a registry, in the Docker daemon, or on standard input.
    #[command(after_help = "\
Examples:
  binfmt-setup scan ./rootfs                          # expected: what most programs are
  binfmt-setup scan --platform linux/arm64 rootfs.tar.gz
  binfmt-setup scan ./oci-layout                      # each image of the index, its own platform
  binfmt-setup scan docker://registry.example.com/app:1          # every platform of the tag
  binfmt-setup scan --platform linux/arm64 docker://localhost:5000/app@sha256:...
  binfmt-setup scan --creds ci:TOKEN --cert-dir ./certs docker://127.0.0.1:5443/app:1
  binfmt-setup scan docker-daemon:myimage:latest      # the local Docker Engine, over its socket
  docker save myimage | binfmt-setup scan -           # a tar or docker save stream on stdin
  binfmt-setup scan oci:./layout:arm64                # one tag of an OCI layout
  binfmt-setup scan docker-archive:img.tar
  binfmt-setup scan --json docker://localhost:5000/app:1 | jq '.mismatches[]'

How the argument is read: `-` is standard input (a tar, plain, gzip or zstd, or docker \
save output). A path that exists is that path, whatever it looks like: a directory (a root \
file system), an OCI image layout (a directory with index.json), or a tar file (a layer, an \
export, docker save output, a packed OCI layout). Anything else is a reference with its \
transport, named as skopeo and podman name them: docker://HOST/REPO:TAG or \
docker://HOST/REPO@sha256:DIGEST (a registry; every platform of a manifest list or index \
is scanned, each against its own platform, variant included), docker-daemon:NAME:TAG (the \
Docker Engine at DOCKER_HOST, a unix socket, default /var/run/docker.sock), \
oci:DIR[:REF] (an OCI layout, only the images tagged REF), docker-archive:FILE (an image \
archive; oci-archive:FILE likewise).

The expected platform is --platform (which also picks that platform's image from an \
index), else the image config's (or the index's, for the variant), else the one most ELF \
programs have (reported as inferred). arm/v7 runs v5 and v6 programs; arm64 does not run \
arm ones. Symlinks are never followed, FIFOs and devices never opened, nothing is \
extracted, and a file deleted by an upper layer's whiteout is not reported. Registry \
layers are streamed and their digests checked as they are read; nothing is written to \
disk. Progress (layers, bytes, files) is shown on stderr when it is a terminal, never \
with -q or --json.

Registries: anonymous, or the login --creds gives, or the one --authfile keeps for the \
host (default: the Docker client's config.json; credential helpers are not run). TLS is \
checked against the system's CAs plus --cert-dir's *.crt (default: \
/etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST). --tls-verify=false allows \
plain HTTP or an unchecked certificate.

A preflight also asks whether the programs will run on this host: each program's recorded \
needs (x86 ISA note, RISC-V and ARM attributes, Go build settings) against its family's \
level probe run natively or through its handler; setuid programs under a handler without \
C; and, for a directory, 64-bit directory cookies for a 32-bit emulated root. In an image, \
programs are read for their needs as the layers stream past (whole, up to 16 MiB each).

Exit 1 when a program does not match or will not run here, an ELF file is damaged or a file \
cannot be read; 0 when everything fits; 2 for bad input: a missing or malformed PATH, an \
unknown platform or transport, a bad reference, a tag, repository or digest the registry does \
not have, a malformed manifest, index or config, a blob that is truncated or does not match \
its digest, an image the Docker daemon does not have; 3 when the environment refuses: a \
registry or daemon that cannot be reached, a TLS handshake that fails (unknown CA), a \
registry that refuses the login or wants one.")]
    Scan(ScanArgs),

    /// Print a shell completion script for bash, zsh or fish.
    #[command(after_help = "\
Examples:
  binfmt-setup completions bash > /etc/bash_completion.d/binfmt-setup
  binfmt-setup completions zsh > \"${fpath[1]}/_binfmt-setup\"
  binfmt-setup completions fish > ~/.config/fish/completions/binfmt-setup.fish

The script is generated from the same definitions as the options themselves, so it never \
lags behind them.")]
    Completions(CompletionsArgs),

    /// Print a manual page (roff), generated from the same definitions as --help: the
    /// program's, or one command's.
    #[command(after_help = "\
Examples:
  binfmt-setup man | man -l -
  binfmt-setup man install | man -l -
  binfmt-setup man > /usr/local/share/man/man1/binfmt-setup.1
  for c in install test diagnose; do binfmt-setup man $c > binfmt-setup-$c.1; done")]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print (binfmt-setup-COMMAND(1)); without one, the
    /// program's own page.
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells completion scripts are made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Architectures to register, comma-separated; `all` for every one, `-NAME` to leave one
    /// out (`all,-riscv64`).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "all",
        allow_hyphen_values = true
    )]
    pub arch: String,

    /// Run the command chrooted in DIR (its PATH searched there).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,

    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The TOML config (without one: every architecture, F, tested).
    #[arg(long, env = "BINFMT_SETUP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Stay up and keep the handlers in place (same as keep_running.enabled in the config).
    #[arg(long)]
    pub keep_running: bool,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Architectures, comma-separated; `all` for every one QEMU can emulate here, `-NAME` to
    /// leave one out (`all,-riscv64`).
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    pub arch: String,

    #[command(flatten)]
    pub handler: HandlerArgs,

    /// Print the register strings and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Remove other owners' entries whose rules overlap ours, instead of skipping the arch.
    #[arg(long)]
    pub replace_foreign: bool,
}

/// How handlers are registered; shared by `install` and `export`, so both make the same entries.
#[derive(Debug, Args)]
pub struct HandlerArgs {
    /// Use PATH as the interpreter for ARCH (repeatable).
    #[arg(long, value_name = "ARCH=PATH")]
    pub interpreter: Vec<String>,

    /// Register without F: the interpreter path is then opened at each exec and must exist
    /// inside containers and chroots.
    #[arg(long)]
    pub no_fix_binary: bool,

    /// Add C: setuid programs run with their own credentials through the interpreter. Only
    /// for a root-owned interpreter that group and others cannot write, and only where every
    /// local user may be root: QEMU then obeys the caller's QEMU_LOG_FILENAME, QEMU_LD_PREFIX
    /// and QEMU_GDB as root (SECURITY.md).
    #[arg(long)]
    pub credential: bool,

    /// Never add P. By default P (programs keep their own argv[0]) is added when a probe shows
    /// the interpreter honours it.
    #[arg(long)]
    pub no_preserve_argv0: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Architectures, comma-separated (`all`, `all,-riscv64`). Default: every one a handler
    /// takes, plus the host's own and those it runs natively.
    #[arg(
        long,
        value_name = "LIST",
        conflicts_with = "binary",
        allow_hyphen_values = true
    )]
    pub arch: Option<String>,

    /// Run this program the same way instead of the probes (it passes when it runs and exits,
    /// whatever its exit status).
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,

    /// Test through the binfmt_misc entry NAME (repeatable) instead: its architecture's probe,
    /// named so that the entry's rule takes it. For an extension rule the architecture is the
    /// one its interpreter is QEMU for (`qemu-x86_64-static`): how an emulator for the host's
    /// own architecture is proven, which a magic rule would make loop.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["arch", "binary"])]
    pub entry: Vec<String>,

    /// Seconds each program may take.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub timeout: f64,

    /// Run from a temporary directory instead of an empty chroot (a handler without F then
    /// passes too).
    #[arg(long)]
    pub no_chroot: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to write.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: crate::export::Format,

    /// Architectures, comma-separated; `all`, `-NAME` to leave one out (`all,-riscv64`).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "all",
        allow_hyphen_values = true
    )]
    pub arch: String,

    #[command(flatten)]
    pub handler: HandlerArgs,

    /// Write one file per entry into DIR (created if missing) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["arch", "name"]))]
pub struct UninstallArgs {
    /// Architectures, comma-separated (`all`, `all,-riscv64`): removes only entries named
    /// qemu-<cpu>.
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
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

/// `diagnose --help`; the cause codes are listed from the cause table itself.
fn diagnose_help() -> String {
    format!(
        "{}{}\n\n{}",
        DIAGNOSE_HELP_INTRO,
        crate::diagnose::Cause::help_lines(),
        DIAGNOSE_HELP_RUN
    )
}

const DIAGNOSE_HELP_INTRO: &str = "\
Examples:
  binfmt-setup diagnose ./server
  binfmt-setup diagnose --root ./rootfs /usr/local/bin/server --run
  binfmt-setup diagnose python3 --json | jq -r .fix

It follows exec's own steps (path and symlinks inside --root, noexec mounts, permission, \
binfmt_misc: the newest enabled entry that matches, #! scripts, ELF loaders) and names the \
first that fails. A script's interpreter, a handler's interpreter and a program's loader \
are checked the same way.

Cause codes (the user sees: Exec format error = ENOEXEC, No such file or directory = \
ENOENT, Permission denied = EACCES):
";

const DIAGNOSE_HELP_RUN: &str = "\
--run also executes it (a plain execve, stdin from /dev/null, chrooted into --root, which \
needs root) and prints the real result beside the prediction. Exit 0 when it will run, 1 when \
a cause is found or the run disagrees, 2 for bad input, 3 when chroot is not permitted.";

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// A program's path, or a command name looked up in PATH (inside --root when given).
    #[arg(value_name = "FILE|COMMAND")]
    pub target: String,

    /// The root directory the program runs in (an unpacked image, a chroot): paths, symlinks,
    /// loaders and interpreters are looked up inside it.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Also execute it (chrooted into --root), and compare the real result with the
    /// prediction.
    #[arg(long)]
    pub run: bool,

    /// With --run: kill the program after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// What to scan: a path (a directory, a tar, an OCI layout), an image reference with its
    /// transport (docker://, docker-daemon:, oci:, docker-archive:), or - for standard input.
    #[arg(value_name = "IMAGE")]
    pub path: PathBuf,

    /// The platform every program must have (linux/arm64, arm/v7, armhf, …); default: the
    /// image config's, else the one most programs have. Picks that platform's image of an
    /// index; several, comma-separated, pick several images, each judged as its own.
    #[arg(long, value_name = "PLATFORM[,…]")]
    pub platform: Option<String>,

    /// Log in to the registry as USER (without :PASSWORD, the password is asked for on the
    /// terminal).
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub creds: Option<String>,

    /// Where registry logins are kept (Docker's config.json or podman's auth.json format);
    /// default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,

    /// Trust the CA certificates (*.crt) in DIR for the registry, besides the system's.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,

    /// Check the registry's TLS certificate; --tls-verify=false allows plain HTTP or an
    /// unchecked certificate.
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub tls_verify: bool,

    /// The Docker Engine's API socket for docker-daemon: (unix:///PATH).
    #[arg(long, value_name = "unix://PATH", env = "DOCKER_HOST")]
    pub daemon_host: Option<String>,
}

#[cfg(test)]
mod scan_tests;

#[cfg(test)]
mod tests;
