//! A Docker Engine of the test's own: dockerd (Debian's docker.io) as root of a private user,
//! mount, network and PID namespace, with its own binfmt_misc instance, data and exec roots
//! and API socket in a temporary directory. `--iptables=false --bridge=none`: it never
//! touches the host's firewall, network or binfmt_misc. Shared by every test that needs a
//! daemon (scan's docker-daemon:, the builder tests); the `Dockerd` guard stops dockerd and
//! its containerd, and the namespace goes with them.
//!
//! The namespace maps uids and gids 0-65535 to the host's (written from outside, as root), so
//! images with files of any owner load; setgroups stays allowed, as builders need.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Run, require_root};

/// Debian's Docker CLI. Not the first `docker` in PATH: a machine may have a newer CLI in
/// /usr/local/bin that wants a buildx plugin Debian's dockerd does not pair with.
pub const DOCKER: &str = "/usr/bin/docker";

/// What runs as the namespace's init: wait for the maps, mount a private binfmt_misc, bring
/// up loopback, start dockerd and pass it SIGTERM.
const INIT: &str = r#"
read -r go || exit 1
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 1
ip link set lo up || exit 1
dockerd --data-root "$1/data" --exec-root "$1/exec" --pidfile "$1/dockerd.pid" \
    -H "unix://$1/docker.sock" --iptables=false --ip6tables=false --bridge=none \
    --log-level warn >"$1/dockerd.log" 2>&1 &
d=$!
trap 'kill -TERM $d; wait $d; exit 0' TERM
wait $d
"#;

/// A running dockerd; dropped, it is stopped and its namespace is gone.
pub struct Dockerd {
    ns: Child,
    /// Kept open: the init reads its go-ahead from it.
    _go: Option<ChildStdin>,
    dir: tempfile::TempDir,
}

impl Dockerd {
    /// Start one and wait until it answers. Root is required (the tests run as root): the
    /// id maps of a namespace that maps more than the caller are written from outside.
    pub fn start() -> Dockerd {
        require_root("a private dockerd");
        let dir = tempfile::Builder::new()
            .prefix("dockerd.")
            .tempdir()
            .expect("tempdir");
        let mut ns = Command::new("unshare")
            .args([
                "--user",
                "--mount",
                "--net",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child=SIGKILL",
                "--",
                "sh",
                "-c",
                INIT,
                "dockerd-init",
            ])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("init.log")).expect("init.log"))
            .spawn()
            .expect("spawn unshare (util-linux)");
        let pid = ns.id();
        // unshare moves itself into the new user namespace before it forks the init.
        let mine = std::fs::read_link("/proc/self/ns/user").expect("my user ns");
        let started = Instant::now();
        while std::fs::read_link(format!("/proc/{pid}/ns/user"))
            .ok()
            .as_ref()
            == Some(&mine)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "unshare did not make a user namespace"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        for map in ["uid_map", "gid_map"] {
            std::fs::write(format!("/proc/{pid}/{map}"), "0 0 65536\n")
                .unwrap_or_else(|e| panic!("write /proc/{pid}/{map}: {e}"));
        }
        let mut go = ns.stdin.take().expect("stdin");
        go.write_all(b"go\n").expect("release the init");
        let mut daemon = Dockerd {
            ns,
            _go: Some(go),
            dir,
        };
        daemon.wait_ready();
        daemon
    }

    /// Until `docker version` reaches the daemon; the namespace ending first fails the test
    /// with dockerd's log.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if self.docker(&["version"]).code == Some(0) {
                return;
            }
            if let Some(status) = self.ns.try_wait().expect("wait") {
                panic!("dockerd's namespace ended ({status}): {}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "dockerd did not answer within two minutes: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the init and dockerd said.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("init.log"), read("dockerd.log"))
    }

    /// The API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// `unix://…`, as DOCKER_HOST takes it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// A command with DOCKER_HOST pointing at this daemon.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("DOCKER_HOST", self.host());
        c
    }

    /// Run Debian's docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Run {
        Run::capture(self.command(DOCKER).args(args))
    }

    /// `docker load -i FILE`, which must succeed.
    #[track_caller]
    pub fn load(&self, archive: &Path) {
        let r = self.docker(&["load", "-q", "-i", archive.to_str().expect("utf-8 path")]);
        assert_eq!(r.code, Some(0), "docker load: {}{}", r.stdout, r.stderr);
    }

    /// A command run inside the daemon's user, mount and PID namespaces, as root there: it
    /// sees the daemon's binfmt_misc.
    pub fn inside(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let init = self.init_pid().expect("the namespace's init");
        let mut c = Command::new("nsenter");
        c.args(["-t", &init.to_string(), "-U", "-m", "-p", "--"])
            .arg(program)
            .stdin(Stdio::null());
        c
    }

    /// The namespace's init (dockerd's parent), as the host numbers it.
    fn init_pid(&self) -> Option<i32> {
        let pid = self.ns.id();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        // SIGTERM to the init, which passes it to dockerd and waits: a clean stop, containerd
        // included. Whatever is left when the init ends is killed with the PID namespace;
        // unshare itself is killed last, and its --kill-child makes sure of the init.
        if let Some(init) = self.init_pid() {
            let _ = kill(Pid::from_raw(init), Signal::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if !matches!(self.ns.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.ns.kill();
        let _ = self.ns.wait();
    }
}
