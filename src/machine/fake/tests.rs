//! The fake machine answers as the kernel would.

use super::*;

fn kind_of(e: std::io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw)
}

fn tree() -> Fake {
    Fake::new()
        .file("/usr/bin/prog", b"x".to_vec(), 0o755)
        .symlink("/bin", "usr/bin")
        .symlink("/usr/bin/rel", "../bin/prog")
        .symlink("/loop/a", "/loop/b")
        .symlink("/loop/b", "/loop/a")
        .dir("/private", 0o700)
        .file("/private/secret", b"s".to_vec(), 0o755)
}

#[test]
fn symlinks_and_dotdot_resolve_as_the_kernel_does() {
    let m = tree();
    assert_eq!(
        m.canonicalize(Path::new("/bin/prog")).ok(),
        Some(PathBuf::from("/usr/bin/prog"))
    );
    // `..` applies to the directory the link led to, not to the link's own parent.
    assert_eq!(
        m.canonicalize(Path::new("/bin/../bin/rel")).ok(),
        Some(PathBuf::from("/usr/bin/prog"))
    );
    assert!(m.lstat(Path::new("/bin")).expect("lstat").is_symlink());
    assert!(m.stat(Path::new("/bin")).expect("stat").is_dir());
    assert_eq!(
        m.read_link(Path::new("/bin")).ok(),
        Some(PathBuf::from("usr/bin"))
    );
    let m = m.cwd("/usr");
    assert!(m.stat(Path::new("bin/prog")).is_ok());
}

#[test]
fn errors_are_the_kernels() {
    let m = tree();
    let err = |p: &str| m.stat(Path::new(p)).err().and_then(kind_of);
    assert_eq!(err("/nope"), Some(Errno::ENOENT));
    assert_eq!(err("/usr/bin/prog/x"), Some(Errno::ENOTDIR));
    assert_eq!(err("/loop/a"), Some(Errno::ELOOP));
    // A chain of 41 links is one too many; 40 are followed.
    let mut chain = Fake::new().file("/t", b"t".to_vec(), 0o644);
    for i in 0..41 {
        let next = if i == 0 {
            "/t".to_string()
        } else {
            format!("/l{}", i - 1)
        };
        chain = chain.symlink(format!("/l{i}"), next);
    }
    assert!(chain.stat(Path::new("/l39")).is_ok());
    assert_eq!(
        chain.stat(Path::new("/l40")).err().and_then(kind_of),
        Some(Errno::ELOOP)
    );
    // Root searches anything; another user needs x on each directory.
    assert!(m.stat(Path::new("/private/secret")).is_ok());
    let user = tree().user(1000, 1000, &[]);
    assert_eq!(
        user.stat(Path::new("/private/secret"))
            .err()
            .and_then(kind_of),
        Some(Errno::EACCES)
    );
    assert!(!user.may_execute(Path::new("/private/secret")));
}

#[test]
fn open_follows_only_where_asked_and_only_regular_files() {
    let m = tree().fifo("/run/fifo", 0o644);
    assert!(m.open(Path::new("/bin/prog"), Follow::Yes).is_ok());
    assert!(m.open(Path::new("/bin/prog"), Follow::NotLast).is_ok());
    assert!(m.open(Path::new("/bin/prog"), Follow::Nowhere).is_err());
    assert!(matches!(
        m.open(Path::new("/usr/bin/rel"), Follow::NotLast),
        Err(OpenError::NotRegular("a symbolic link"))
    ));
    assert!(matches!(
        m.open(Path::new("/run/fifo"), Follow::Yes),
        Err(OpenError::NotRegular("a FIFO"))
    ));
    let (h, meta) = m
        .open(Path::new("/usr/bin/prog"), Follow::Nowhere)
        .expect("open");
    assert_eq!(
        (meta.len, h.read_prefix(10).expect("read")),
        (1, b"x".to_vec())
    );
}

#[test]
fn execute_permission_follows_class_and_mounts() {
    let m = Fake::new()
        .entry(
            "/home/u/mine",
            Node::file(b"x".to_vec(), 0o601).owned_by(1000, 1000),
        )
        .entry(
            "/home/u/group",
            Node::file(b"x".to_vec(), 0o010).owned_by(0, 50),
        )
        .file("/tmp/x", b"x".to_vec(), 0o755)
        .mount("/tmp", "tmpfs", true)
        .user(1000, 1000, &[50]);
    // Linux uses the owner's bits for the owner, even when others' would allow it.
    assert!(!m.may_execute(Path::new("/home/u/mine")));
    assert!(m.may_execute(Path::new("/home/u/group")));
    assert!(!m.may_execute(Path::new("/tmp/x")));
    assert_eq!(m.statvfs_noexec(Path::new("/tmp/x")), Some(true));
    let names = m.read_dir(Path::new("/home/u")).expect("read_dir");
    assert_eq!(names, vec![OsString::from("group"), OsString::from("mine")]);
}

/// The fake and the real file system answer the same lookups the same way.
#[test]
fn the_fake_agrees_with_the_real_file_system() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().canonicalize().expect("canonical");
    let b = |p: &str| base.join(p.trim_start_matches('/'));
    std::fs::create_dir_all(b("usr/bin")).expect("mkdir");
    std::fs::write(b("usr/bin/prog"), b"x").expect("write");
    std::os::unix::fs::symlink("usr/bin", b("bin")).expect("symlink");
    std::os::unix::fs::symlink("../bin/prog", b("usr/bin/rel")).expect("symlink");
    std::os::unix::fs::symlink(b("loop2"), b("loop1")).expect("symlink");
    std::os::unix::fs::symlink(b("loop1"), b("loop2")).expect("symlink");
    let fake = Fake::new()
        .file(b("usr/bin/prog"), b"x".to_vec(), 0o644)
        .symlink(b("bin"), "usr/bin")
        .symlink(b("usr/bin/rel"), "../bin/prog")
        .symlink(b("loop1"), b("loop2"))
        .symlink(b("loop2"), b("loop1"));
    let live = super::super::Live::new();
    for p in [
        "/bin/prog",
        "/usr/bin/rel",
        "/bin/../bin/rel",
        "/usr/bin/prog/x",
        "/loop1",
        "/nope",
        "/bin",
    ] {
        let p = b(p);
        let said = |m: &dyn Machine| {
            (
                m.stat(&p).map(|s| s.kind).map_err(kind_of),
                m.lstat(&p).map(|s| s.kind).map_err(kind_of),
                m.canonicalize(&p).map_err(kind_of),
            )
        };
        assert_eq!(said(&fake), said(&live), "{}", p.display());
    }
}
