//! The harness every integration test uses: run the real binary, build the fixtures once,
//! and give a test a private binfmt_misc instance in its own user + mount namespace, so
//! registrations are real kernel registrations that never reach the host.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

pub const HOST_BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_binfmt-setup"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Build (or reuse) the fixtures with scripts/fixtures.sh; once per test run.
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = repo().join("target/fixtures");
        let status = Command::new("bash")
            .arg(repo().join("scripts/fixtures.sh"))
            .arg(&out)
            .status()
            .expect("run scripts/fixtures.sh");
        assert!(
            status.success(),
            "scripts/fixtures.sh failed; run scripts/setup.sh first"
        );
        out
    })
}

pub fn fixture(name: &str) -> PathBuf {
    let p = fixtures().join(name);
    assert!(
        p.exists(),
        "fixture {name} missing from {dir}: build the fixtures with `bash scripts/fixtures.sh {dir}` (after scripts/setup.sh)",
        dir = fixtures().display()
    );
    p
}

/// A fixture's path as a string, for argument lists.
pub fn fx(name: &str) -> String {
    fixture(name).display().to_string()
}

/// The finished run of a command.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Run a prepared command to completion, stdin closed.
    pub fn capture(cmd: &mut Command) -> Run {
        Run::from(
            cmd.stdin(Stdio::null())
                .env_remove("BINFMT_SETUP_DIR")
                .output()
                .expect("spawn"),
        )
    }

    /// Run a prepared command, stdin closed, failing the test (after killing it) if it has
    /// not finished within `limit`.
    #[track_caller]
    pub fn within(cmd: &mut Command, limit: std::time::Duration) -> Run {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let started = std::time::Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if started.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait");
                panic!(
                    "{cmd:?} still running after {limit:?} (it blocked?); stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Run::from(child.wait_with_output().expect("output"))
    }

    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Exit 0, or fail naming `what` (a builder's step, say) with both outputs.
    pub fn expect_ok(&self, what: &str) -> &Run {
        assert_eq!(
            self.code,
            Some(0),
            "{what} failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Run the binary on the host with `args`. Host binfmt_misc is only ever read this way.
pub fn run(args: &[&str]) -> Run {
    Run::from(
        Command::new(bin())
            .args(args)
            .env_remove("BINFMT_SETUP_DIR")
            .stdin(Stdio::null())
            .output()
            .expect("spawn binfmt-setup"),
    )
}

/// A private binfmt_misc instance: a sleeping process holding a new user and mount
/// namespace with binfmt_misc freshly mounted at the usual path. Commands run inside it
/// with nsenter. Dropped: the process is killed and the instance disappears with it.
pub struct PrivateBinfmt {
    holder: Child,
    pid: u32,
}

impl PrivateBinfmt {
    /// A fresh, empty instance. Panics with the reason when the kernel cannot make one: every
    /// test that needs one would be meaningless without it, so it must not pass silently.
    pub fn new() -> PrivateBinfmt {
        Self::spawn(false)
    }

    /// An instance whose namespace maps uids and gids 0-65535 to the host's, so a test can act
    /// there as an ordinary user (`setpriv --reuid 65534`). Writing such a map needs root on
    /// the host: `None` otherwise.
    pub fn with_users() -> Option<PrivateBinfmt> {
        nix_is_root().then(|| Self::spawn_mapped(Some("0 0 65536")))
    }

    /// An instance whose namespace maps ids as `map` says (`0 100000 65536`: a subordinate
    /// range, as `buildah unshare` or rootlesskit make, where the host's root is not mapped).
    /// Needs root on the host.
    pub fn mapped(map: &str) -> PrivateBinfmt {
        require_root("a namespace with a written id map");
        Self::spawn_mapped(Some(map))
    }

    fn spawn(map_all: bool) -> PrivateBinfmt {
        Self::spawn_mapped(map_all.then_some("0 0 65536"))
    }

    /// The binary under test inside, as the namespace's root (not with the test's own
    /// credentials, which a namespace that does not map the host's root would show as
    /// nobody).
    pub fn run_as_root(&self, args: &[&str]) -> Run {
        Run::capture(
            Command::new("nsenter")
                .args(["-t", &self.pid.to_string(), "-U", "-m", "--"])
                .arg(bin())
                .args(args),
        )
    }

    fn spawn_mapped(ids: Option<&str>) -> PrivateBinfmt {
        let map_all = ids.is_some();
        // Without --map-root-user the shell waits for the test to write its maps, then mounts.
        let (flags, wait) = if map_all {
            (vec!["--user", "--mount", "--fork"], "echo $$; read go; ")
        } else {
            (vec!["--user", "--map-root-user", "--mount", "--fork"], "")
        };
        // The holder runs as the host id the map makes root inside (100000 in
        // `0 100000 65536`), so that once its maps are written it is root there and mount(8)
        // lets it mount.
        let host_root = ids
            .and_then(|m| m.split_whitespace().nth(1))
            .unwrap_or("0")
            .to_string();
        let mut holder = Command::new("setpriv")
            .args([
                &format!("--reuid={host_root}"),
                &format!("--regid={host_root}"),
                "--clear-groups",
                "unshare",
            ])
            .args(&flags)
            .args(["sh", "-c"])
            .arg(format!(
                "{wait}mount -t binfmt_misc binfmt_misc {HOST_BINFMT} || exit 1; echo $$; exec sleep 3600"
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn unshare (util-linux)");
        use std::io::{BufRead, Write};
        let stdout = holder.stdout.take().expect("holder stdout");
        let mut lines = std::io::BufReader::new(stdout);
        let mut line = String::new();
        if map_all {
            lines.read_line(&mut line).expect("read holder pid");
            let pid = line.trim().to_string();
            for map in ["uid_map", "gid_map"] {
                std::fs::write(
                    format!("/proc/{pid}/{map}"),
                    format!("{}\n", ids.unwrap_or_default()),
                )
                .unwrap_or_else(|e| panic!("write /proc/{pid}/{map}: {e}"));
            }
            let mut stdin = holder.stdin.take().expect("holder stdin");
            stdin.write_all(b"go\n").expect("release holder");
            line.clear();
        }
        lines.read_line(&mut line).expect("read holder pid");
        let Ok(pid) = line.trim().parse::<u32>() else {
            let out = holder.wait_with_output().expect("holder output");
            panic!(
                "cannot create a private binfmt_misc instance (needs Linux >= 6.7 and user namespaces): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        PrivateBinfmt { holder, pid }
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.args([
            "-t",
            &self.pid.to_string(),
            "-U",
            "-m",
            "--preserve-credentials",
            "--",
        ])
        .arg(program)
        .env_remove("BINFMT_SETUP_DIR")
        .stdin(Stdio::null());
        c
    }

    /// Run a program (by path) inside with a plain execve(2), through the library's process
    /// layer (it joins this instance's namespaces in the child). Not nsenter: it execs with
    /// execvp, which answers ENOEXEC by running the file through /bin/sh, and a test of exec
    /// must see the kernel's own answer. An exec failure reads as no exit code and
    /// `exec: <error> (<ERRNO>)` on stderr.
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Run {
        exec_in(self.pid, program, args)
    }

    /// Run a native tool inside (looked up in PATH).
    pub fn tool(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Run {
        Run::from(
            self.command(program)
                .args(args)
                .output()
                .expect("spawn nsenter"),
        )
    }

    /// Run the binary under test inside, failing the test if it has not finished within
    /// `limit` (it is killed): for inputs that must never make it block.
    #[track_caller]
    pub fn run_within(&self, limit: std::time::Duration, args: &[&str]) -> Run {
        let mut cmd = self.command(bin());
        cmd.args(args);
        Run::within(&mut cmd, limit)
    }

    /// Run the binary under test inside.
    pub fn run(&self, args: &[&str]) -> Run {
        self.tool(bin(), args)
    }

    /// Shell snippet inside (for writes to binfmt_misc control files).
    pub fn sh(&self, script: &str) -> Run {
        self.tool("sh", &["-c", script])
    }

    /// The instance's directory as this process reaches it: through the holder's root,
    /// which walks the holder's mount namespace. Entries are read and control files written
    /// from here directly, with no process started inside.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{HOST_BINFMT}", self.pid))
    }

    /// Write `bytes` to a control file (`register`, `status`, an entry) with one write(2):
    /// the kernel takes one rule per write.
    fn write_control(&self, file: &str, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir().join(file))?;
        let n = f.write(bytes)?;
        if n != bytes.len() {
            return Err(std::io::Error::other(format!(
                "short write: {n} of {}",
                bytes.len()
            )));
        }
        Ok(())
    }

    /// Register a rule with one write(2), as the kernel requires.
    #[track_caller]
    pub fn register(&self, rule: &str) {
        if let Err(e) = self.write_control("register", rule.as_bytes()) {
            panic!("register {rule:?} failed: {e}");
        }
    }

    /// Register a rule and disable it before anything runs in the instance. A rule that
    /// matches the host's own programs (an x86_64 rule on amd64) would send every later exec
    /// there to its interpreter; disabled, it stays listed and matches nothing. Both writes
    /// come from outside, so nothing execs inside in between.
    #[track_caller]
    pub fn register_disabled(&self, name: &str, rule: &str) {
        self.register(rule);
        self.control(name, "0");
    }

    /// Write a control value (`0`, `1`, `-1`) to an entry file or `status`.
    #[track_caller]
    pub fn control(&self, file: &str, value: &str) {
        if let Err(e) = self.write_control(file, value.as_bytes()) {
            panic!("write {value} to {file}: {e}");
        }
    }

    /// One entry file's exact bytes.
    #[track_caller]
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir().join(name))
            .unwrap_or_else(|e| panic!("read entry {name}: {e}"))
    }

    /// Every entry file's exact bytes, by name, sorted by name.
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .listing()
            .into_iter()
            .filter(|n| n != "register" && n != "status")
            // An entry removed between the listing and the read is simply gone.
            .filter_map(|n| {
                std::fs::read_to_string(self.dir().join(&n))
                    .ok()
                    .map(|t| (n, t))
            })
            .collect();
        out.sort();
        out
    }

    /// Names in the instance's directory, as a listing inside shows them.
    pub fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for PrivateBinfmt {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// [`PrivateBinfmt::exec`] in the user and mount namespaces of any process `pid`: also for
/// namespaces a test makes inside an instance (a nested one, one with a mount of its own).
pub fn exec_in(pid: u32, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Run {
    use binfmt_setup::sys::exec::{self, Ending, Spec};
    let program = program.as_ref();
    let argv = std::iter::once(program).chain(args.iter().map(std::ffi::OsStr::new));
    let spec = Spec::new(program)
        .argv(argv)
        .join_namespaces_of(pid)
        .new_process_group();
    let out = exec::run(&spec, Some(std::time::Duration::from_secs(60)))
        .unwrap_or_else(|e| panic!("spawn {}: {e}", Path::new(program).display()));
    let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = match out.ending {
        Ending::Exited(c) => Some(c),
        Ending::Failed { step, errno } => {
            stderr.push_str(&format!("{}: {} ({errno:?})", step.as_str(), errno.desc()));
            None
        }
        Ending::Signaled(_) | Ending::TimedOut => None,
    };
    Run {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

/// The `\x..`-escaped register string for a rule of the embedded table's form.
pub fn register_string(
    name: &str,
    magic_hex: &str,
    mask_hex: &str,
    interpreter: &str,
    flags: &str,
) -> String {
    let esc = |hex: &str| {
        (0..hex.len())
            .step_by(2)
            .map(|i| format!("\\x{}", &hex[i..i + 2]))
            .collect::<String>()
    };
    format!(
        ":{name}:M::{}:{}:{interpreter}:{flags}",
        esc(magic_hex),
        esc(mask_hex)
    )
}

pub const AARCH64_MAGIC: &str = "7f454c460201010000000000000000000200b700";
pub const AARCH64_MASK: &str = "ffffffffffffff00fffffffffffffffffeffffff";

/// Whether the tests run as root on the host.
pub fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Names of the host's binfmt_misc entries, read only.
pub fn host_entries() -> Vec<String> {
    match std::fs::read_dir(HOST_BINFMT) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Fail, naming what needs root, when the tests do not run as root (CI runs them as
/// root). A test never passes by leaving its check out.
#[track_caller]
pub fn require_root(what: &str) {
    assert!(
        nix_is_root(),
        "{what} needs root on the host (CI runs the tests as root): run `sudo scripts/test.sh`"
    );
}

/// Say what a test saw (shown with `cargo test -- --nocapture`).
#[allow(clippy::print_stderr)]
pub fn note(what: &str) {
    eprintln!("note: {what}");
}
