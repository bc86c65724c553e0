//! What to run, and the steps its child takes first.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::sys::signal::SigSet;

use super::RootOp;

/// Where the child's standard input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    /// /dev/null: a probe or a diagnosed program must not read our terminal.
    Null,
    /// Ours.
    Inherit,
}

/// What becomes of the child's stdout and stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Ours.
    Inherit,
    /// Read through pipes while the child runs; the first `limit` bytes of each are kept,
    /// the rest read and dropped.
    Capture { limit: usize },
}

/// The environment the program gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Env {
    /// Ours, as it is when the child is spawned.
    Inherit,
    /// Exactly these `KEY=value` strings.
    Exactly(Vec<OsString>),
}

/// What to do when chroot(2) is refused for lack of privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChrootFallback {
    /// Fail at [`Step::Chroot`].
    None,
    /// Enter a new user namespace, where we may chroot. Exec still finds handlers in the
    /// nearest binfmt_misc instance above, so the instance being tested is the one used.
    UserNamespace,
}

/// The steps the child takes before exec, in this order. A failure names its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Signal mask and dispositions, process group, standard descriptors.
    Prepare,
    /// Joining another process's user and mount namespaces.
    Join,
    /// Entering a new user and mount namespace with a fresh binfmt_misc.
    PrivateInstance,
    /// Writing a rule to that instance's `register`.
    Register,
    /// Putting a root file system in place (mounts in the child's mount namespace).
    Root,
    /// chroot(2) and chdir("/").
    Chroot,
    /// Finding the command in PATH (inside any root): ENOENT, nothing of that name.
    Lookup,
    /// execve(2) itself.
    Exec,
}

impl Step {
    const ALL: [Step; 8] = [
        Step::Prepare,
        Step::Join,
        Step::PrivateInstance,
        Step::Register,
        Step::Root,
        Step::Chroot,
        Step::Lookup,
        Step::Exec,
    ];

    pub(super) fn from_u8(b: u8) -> Step {
        Step::ALL
            .get(usize::from(b))
            .copied()
            .unwrap_or(Step::Prepare)
    }

    pub(crate) fn as_u8(self) -> u8 {
        Step::ALL.iter().position(|s| *s == self).unwrap_or(0) as u8
    }

    /// In words, for messages: "chroot", "exec", …
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Prepare => "preparing the child",
            Step::Join => "joining the namespaces",
            Step::PrivateInstance => "making a private binfmt_misc",
            Step::Register => "registering in the private binfmt_misc",
            Step::Root => "putting the root file system in place",
            Step::Chroot => "chroot",
            Step::Lookup => "looking the command up in PATH",
            Step::Exec => "exec",
        }
    }
}

/// What to run, and how.
#[derive(Debug, Clone)]
pub struct Spec {
    pub(super) program: PathBuf,
    pub(super) argv: Vec<OsString>,
    pub(super) env: Env,
    pub(super) stdin: Stdin,
    pub(super) output: Output,
    pub(super) mask: Option<SigSet>,
    pub(super) new_group: bool,
    pub(super) join: Option<u32>,
    pub(super) private: Option<(Vec<String>, IdMaps)>,
    pub(super) root: Vec<RootOp>,
    pub(super) chroot: Option<(PathBuf, ChrootFallback)>,
    pub(super) search: Option<OsString>,
}

/// Who writes the id maps of a private instance's new user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdMaps {
    /// The child maps only our own uid and gid to root (anyone may; setgroups is denied).
    Own,
    /// The parent does, between [`spawn_paused`] and [`Paused::resume`]: a full range as
    /// root, subordinate ids through newuidmap. setgroups stays allowed.
    ByParent,
}

impl Spec {
    /// `program` (the path passed to execve) with argv `[program]`, our environment, stdin
    /// from /dev/null, output captured up to 64 KiB, and no other step.
    pub fn new(program: impl Into<PathBuf>) -> Spec {
        let program = program.into();
        Spec {
            argv: vec![program.clone().into_os_string()],
            program,
            env: Env::Inherit,
            stdin: Stdin::Null,
            output: Output::Capture { limit: 64 * 1024 },
            mask: None,
            new_group: false,
            join: None,
            private: None,
            root: Vec::new(),
            chroot: None,
            search: None,
        }
    }

    /// The whole argv, argv[0] first (a `P` handler hands argv[0] on; one without replaces
    /// it by the path).
    pub fn argv<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, argv: I) -> Spec {
        self.argv = argv.into_iter().map(Into::into).collect();
        self
    }

    pub fn env(mut self, env: Env) -> Spec {
        self.env = env;
        self
    }

    pub fn stdin(mut self, stdin: Stdin) -> Spec {
        self.stdin = stdin;
        self
    }

    pub fn output(mut self, output: Output) -> Spec {
        self.output = output;
        self
    }

    /// The signal mask the program starts with (default: nothing blocked). SIGPIPE is
    /// always reset to its default action, which Rust programs ignore and exec would keep.
    pub fn signal_mask(mut self, mask: SigSet) -> Spec {
        self.mask = Some(mask);
        self
    }

    /// Its own process group, so a timeout kills whatever it started too.
    pub fn new_process_group(mut self) -> Spec {
        self.new_group = true;
        self
    }

    /// Join the user and mount namespaces of process `pid` first (a test's private
    /// binfmt_misc instance, held by a sleeping process).
    pub fn join_namespaces_of(mut self, pid: u32) -> Spec {
        self.join = Some(pid);
        self
    }

    /// Run against a private, empty binfmt_misc (see `sys::ns`) holding only `rules`
    /// (register strings, one write each): with none, only what the kernel runs itself runs.
    pub fn private_binfmt(mut self, rules: Vec<String>) -> Spec {
        self.private = Some((rules, IdMaps::Own));
        self
    }

    /// As [`private_binfmt`](Self::private_binfmt), with the id maps written by the parent
    /// (spawn it with [`spawn_paused`]).
    pub fn private_binfmt_mapped_by_parent(mut self, rules: Vec<String>) -> Spec {
        self.private = Some((rules, IdMaps::ByParent));
        self
    }

    /// Put a root file system in place before the chroot (mounts made in the child's own
    /// mount namespace, so a private instance is needed first).
    pub fn prepare_root(mut self, ops: Vec<RootOp>) -> Spec {
        self.root = ops;
        self
    }

    /// The program is a command looked up in `path` (a PATH value) by the one rule of
    /// `sys::path`, inside any root, after the chroot. A command holding a `/` is a path.
    pub fn search(mut self, path: impl Into<OsString>) -> Spec {
        self.search = Some(path.into());
        self
    }

    /// chroot to `dir` before exec; `program` is then looked up inside it.
    pub fn chroot(mut self, dir: impl Into<PathBuf>, fallback: ChrootFallback) -> Spec {
        self.chroot = Some((dir.into(), fallback));
        self
    }

    pub fn program(&self) -> &Path {
        &self.program
    }
}
