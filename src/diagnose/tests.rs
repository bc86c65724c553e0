//! Every cause, found on a fake machine: each test builds the few files, mounts and
//! binfmt_misc entries the cause needs and checks the cause, the errno exec would give, and
//! the words that matter in the message and the fix. `COVERED` names the test of each
//! cause, so a cause without one fails `every_cause_has_a_test`.

use std::path::Path;

use nix::errno::Errno;

use super::*;
use crate::binfmt::Snapshot;
use crate::machine::testing::{dynamic_program, entry, program, table};
use crate::machine::{Fake, Node};

mod after;

const DIR: &str = "/proc/sys/fs/binfmt_misc";
pub(super) const QEMU: &str = "/usr/bin/qemu-aarch64-static";
pub(super) const LD: &str = "/lib64/ld-linux-x86-64.so.2";

pub(super) fn diagnose(m: &Fake, root: Option<&str>, target: &str) -> Diagnosis {
    let snap = Machine::binfmt(m, Path::new(DIR)).expect("snapshot");
    let inspector = Inspector::new(m, table(), snap);
    let root = match root {
        Some(r) => RootFs::new(m, Path::new(r)).expect("root"),
        None => RootFs::host(m),
    };
    Diagnoser::new(&inspector, root, Path::new(DIR))
        .diagnose(target)
        .expect("diagnosis")
}

/// The cause, exec's errno, and words the message and the fix must hold.
pub(super) fn expect(
    d: &Diagnosis,
    cause: Cause,
    errno: Option<Errno>,
    message: &[&str],
    fix: &[&str],
) {
    assert_eq!((d.cause, d.errno), (cause, errno), "{d:#?}");
    assert_eq!(d.ok, cause == Cause::Ok, "{d:#?}");
    for w in message {
        assert!(d.message.contains(w), "message lacks {w:?}: {d:#?}");
    }
    let shown = d.fix.as_deref().unwrap_or_default();
    for w in fix {
        assert!(shown.contains(w), "fix lacks {w:?}: {d:#?}");
    }
}

/// A host with an arm64 program at /srv/prog and a static QEMU for it (an amd64 program).
pub(super) fn with_arm64() -> Fake {
    Fake::new()
        .file("/srv/prog", program("arm64"), 0o755)
        .file(QEMU, program("amd64"), 0o755)
}

/// A mounted, enabled binfmt_misc with no entries.
fn empty_binfmt() -> Snapshot {
    Snapshot {
        mounted: true,
        enabled: true,
        ..Snapshot::empty()
    }
}

/// The cause each test is for; `every_cause_has_a_test` checks none is left out.
const COVERED: &[(Cause, fn())] = &[
    (Cause::Ok, ok_native_compat_and_emulated),
    (Cause::NotFound, not_found_path_symlink_and_command),
    (
        Cause::NotExecutable,
        not_executable_bits_directories_and_search,
    ),
    (
        Cause::NoexecMount,
        noexec_mount_from_the_list_and_from_statvfs,
    ),
    (Cause::NotABinary, not_a_binary_text_empty_and_object),
    (Cause::ForeignOs, foreign_os_macho_and_freebsd),
    (Cause::Truncated, truncated_headers),
    (Cause::BinfmtNotMounted, binfmt_not_mounted),
    (Cause::BinfmtDisabled, binfmt_disabled),
    (Cause::NoHandler, no_handler_and_a_rule_that_misses),
    (Cause::HandlerDisabled, handler_disabled),
    (
        Cause::InterpreterMissing,
        interpreter_missing_and_a_rule_that_takes_its_own_interpreter,
    ),
    (Cause::InterpreterNotInRoot, interpreter_not_in_root),
    (
        Cause::InterpreterDynamic,
        interpreter_dynamic_without_loader_or_libraries,
    ),
    (Cause::LoaderMissing, loader_missing_native_and_emulated),
    (
        Cause::ShebangInterpreterMissing,
        shebang_interpreter_missing_direct_and_through_env,
    ),
    (
        Cause::ShebangCrlf,
        shebang_crlf_in_the_interpreter_and_in_its_argument,
    ),
    (Cause::UnsupportedArch, unsupported_arch_and_unknown_machine),
    (
        Cause::HostAbiUnsupported,
        host_abi_unsupported_refused_or_not_asked,
    ),
    (
        Cause::IllegalInstruction,
        after::illegal_instruction_predicted_and_proven_by_a_rerun,
    ),
    (
        Cause::LibraryMissing,
        after::library_missing_native_and_emulated,
    ),
    (Cause::TextBusy, after::text_busy_names_the_writer),
    (
        Cause::ShebangLoop,
        after::shebang_loop_itself_and_through_another,
    ),
    (
        Cause::ShebangTooLong,
        after::shebang_too_long_past_the_kernels_buffer,
    ),
    (
        Cause::SetuidNeedsCredential,
        after::setuid_needs_credential_without_c_only,
    ),
];

#[test]
fn ok_native_compat_and_emulated() {
    let m = with_arm64()
        .file("/usr/bin/prog", program("amd64"), 0o755)
        .file("/usr/bin/old", program("386"), 0o755)
        .native("386", true)
        .handler(entry("arm64", QEMU, "F", true));
    let d = diagnose(&m, None, "/usr/bin/prog");
    expect(
        &d,
        Cause::Ok,
        None,
        &["an amd64 program", "runs it natively"],
        &[],
    );
    assert_eq!(d.fix, None);
    let d = diagnose(&m, None, "/usr/bin/old");
    expect(
        &d,
        Cause::Ok,
        None,
        &["kernel runs 386 programs itself"],
        &[],
    );
    let d = diagnose(&m, None, "/srv/prog");
    expect(
        &d,
        Cause::Ok,
        None,
        &["handler qemu-aarch64 runs it with"],
        &[],
    );
    assert_eq!(d.handler.as_deref(), Some("qemu-aarch64"));
}

#[test]
fn not_found_path_symlink_and_command() {
    let m = Fake::new()
        .symlink("/usr/bin/tool", "/opt/tool")
        .file("/usr/bin/f", b"x".to_vec(), 0o755)
        .env_var("PATH", "/usr/bin");
    let d = diagnose(&m, None, "/usr/bin/nothere");
    expect(
        &d,
        Cause::NotFound,
        Some(Errno::ENOENT),
        &["does not exist on this system"],
        &["check the path"],
    );
    let d = diagnose(&m, None, "/usr/bin/tool");
    expect(
        &d,
        Cause::NotFound,
        Some(Errno::ENOENT),
        &["the symlink /usr/bin/tool points to /opt/tool"],
        &["repair the symlink /usr/bin/tool"],
    );
    let d = diagnose(&m, None, "/usr/bin/f/x");
    expect(
        &d,
        Cause::NotFound,
        Some(Errno::ENOTDIR),
        &["/usr/bin/f is not a directory"],
        &[],
    );
    let d = diagnose(&m, None, "nothere");
    expect(
        &d,
        Cause::NotFound,
        Some(Errno::ENOENT),
        &["no command nothere in PATH (/usr/bin)"],
        &["add its directory to PATH"],
    );
    assert_eq!(d.error.as_deref(), Some("nothere: command not found"));
}

#[test]
fn not_executable_bits_directories_and_search() {
    let m = Fake::new()
        .file("/srv/none", program("amd64"), 0o644)
        .entry(
            "/srv/mine",
            Node::file(program("amd64"), 0o601).owned_by(1000, 1000),
        )
        .dir("/srv/closed", 0o700)
        .file("/srv/closed/prog", program("amd64"), 0o755)
        .dir("/srv/dir", 0o755)
        .user(1000, 1000, &[]);
    let d = diagnose(&m, None, "/srv/none");
    expect(
        &d,
        Cause::NotExecutable,
        Some(Errno::EACCES),
        &["no execute permission at all (mode 0644)"],
        &["chmod +x /srv/none"],
    );
    let d = diagnose(&m, None, "/srv/mine");
    expect(
        &d,
        Cause::NotExecutable,
        Some(Errno::EACCES),
        &["you own it (uid 1000)"],
        &["chmod u+x /srv/mine"],
    );
    let d = diagnose(&m, None, "/srv/closed/prog");
    expect(
        &d,
        Cause::NotExecutable,
        Some(Errno::EACCES),
        &["cannot be reached: /srv/closed/prog"],
        &["search (x) permission"],
    );
    let d = diagnose(&m, None, "/srv/dir");
    expect(
        &d,
        Cause::NotExecutable,
        Some(Errno::EACCES),
        &["is a directory, not a program"],
        &["the path of a program file"],
    );
}

#[test]
fn noexec_mount_from_the_list_and_from_statvfs() {
    let m = Fake::new()
        .file("/tmp/prog", program("amd64"), 0o755)
        .mount("/tmp", "tmpfs", true);
    let d = diagnose(&m, None, "/tmp/prog");
    expect(
        &d,
        Cause::NoexecMount,
        Some(Errno::EACCES),
        &["lies on /tmp (tmpfs), which is mounted noexec"],
        &["mount -o remount,exec /tmp"],
    );
    let d = diagnose(&m.unreadable_mounts(), None, "/tmp/prog");
    expect(
        &d,
        Cause::NoexecMount,
        Some(Errno::EACCES),
        &["lies on its filesystem"],
        &["move /tmp/prog to a filesystem"],
    );
}

#[test]
fn not_a_binary_text_empty_and_object() {
    let mut object = program("amd64");
    object[16] = 1; // ET_REL
    let m = Fake::new()
        .file("/srv/text", b"echo hi\n".to_vec(), 0o755)
        .file("/srv/empty", Vec::new(), 0o755)
        .file("/srv/x.o", object, 0o755)
        .file("/srv/blank-shebang", b"#!\n".to_vec(), 0o755);
    let d = diagnose(&m, None, "/srv/text");
    expect(
        &d,
        Cause::NotABinary,
        Some(Errno::ENOEXEC),
        &["a text file without a '#!' line"],
        &["sed -i '1i #!/bin/sh' /srv/text"],
    );
    let d = diagnose(&m, None, "/srv/empty");
    expect(
        &d,
        Cause::NotABinary,
        Some(Errno::ENOEXEC),
        &["/srv/empty is empty"],
        &["copy or build /srv/empty again"],
    );
    let d = diagnose(&m, None, "/srv/x.o");
    expect(
        &d,
        Cause::NotABinary,
        Some(Errno::ENOEXEC),
        &["relocatable object"],
        &["link the object into a program"],
    );
    let d = diagnose(&m, None, "/srv/blank-shebang");
    expect(
        &d,
        Cause::NotABinary,
        Some(Errno::ENOEXEC),
        &["names no interpreter"],
        &["#!/bin/sh"],
    );
}

#[test]
fn foreign_os_macho_and_freebsd() {
    let mut macho = b"\xcf\xfa\xed\xfe".to_vec();
    macho.extend_from_slice(&0x0100_000cu32.to_le_bytes()); // CPU_TYPE_ARM64
    macho.resize(64, 0);
    let mut freebsd = program("amd64");
    freebsd[7] = 9; // ELFOSABI_FREEBSD
    let m = Fake::new()
        .file("/srv/mac", macho, 0o755)
        .file("/srv/bsd", freebsd, 0o755);
    let d = diagnose(&m, None, "/srv/mac");
    expect(
        &d,
        Cause::ForeignOs,
        Some(Errno::ENOEXEC),
        &["a macOS (Mach-O) program for arm64"],
        &["GOOS=linux GOARCH=amd64"],
    );
    // The CPU matches, so Linux loads it: exec succeeds, then it misbehaves.
    let d = diagnose(&m, None, "/srv/bsd");
    expect(
        &d,
        Cause::ForeignOs,
        None,
        &["a FreeBSD program for amd64", "system calls"],
        &["GOOS=linux"],
    );
    assert!(
        d.error.as_deref().unwrap_or_default().contains("it starts"),
        "{d:#?}"
    );
}

#[test]
fn truncated_headers() {
    let m = Fake::new().file("/srv/cut", program("arm64")[..64].to_vec(), 0o755);
    let d = diagnose(&m, None, "/srv/cut");
    expect(
        &d,
        Cause::Truncated,
        Some(Errno::ENOEXEC),
        &["an arm64 ELF file cut short"],
        &["damaged (64 bytes)"],
    );
}

#[test]
fn binfmt_not_mounted() {
    let d = diagnose(&with_arm64(), None, "/srv/prog");
    expect(
        &d,
        Cause::BinfmtNotMounted,
        Some(Errno::ENOEXEC),
        &[
            "an arm64 program",
            "this host is amd64",
            "not mounted at /proc/sys/fs/binfmt_misc",
        ],
        &["binfmt-setup install --arch arm64 (mounts binfmt_misc first)"],
    );
}

#[test]
fn binfmt_disabled() {
    let off = Snapshot {
        enabled: false,
        ..empty_binfmt()
    };
    let d = diagnose(&with_arm64().binfmt_snapshot(off), None, "/srv/prog");
    expect(
        &d,
        Cause::BinfmtDisabled,
        Some(Errno::ENOEXEC),
        &["disabled as a whole"],
        &["echo 1 > /proc/sys/fs/binfmt_misc/status"],
    );
}

#[test]
fn no_handler_and_a_rule_that_misses() {
    let d = diagnose(
        &with_arm64().binfmt_snapshot(empty_binfmt()),
        None,
        "/srv/prog",
    );
    expect(
        &d,
        Cause::NoHandler,
        Some(Errno::ENOEXEC),
        &["has no binfmt_misc handler for arm64"],
        &["binfmt-setup install --arch arm64"],
    );
    let mut wrong = entry("arm64", QEMU, "F", true);
    wrong.rule = crate::binfmt::Rule::Extension("arm".into());
    let d = diagnose(&with_arm64().handler(wrong), None, "/srv/prog");
    expect(&d, Cause::NoHandler, Some(Errno::ENOEXEC), &[], &[]);
    assert!(
        d.notes.iter().any(|n| n.contains("meant for arm64")),
        "{d:#?}"
    );
}

#[test]
fn handler_disabled() {
    let m = with_arm64().handler(entry("arm64", QEMU, "F", false));
    let d = diagnose(&m, None, "/srv/prog");
    expect(
        &d,
        Cause::HandlerDisabled,
        Some(Errno::ENOEXEC),
        &["its binfmt_misc handler qemu-aarch64 is disabled"],
        &["echo 1 > /proc/sys/fs/binfmt_misc/qemu-aarch64"],
    );
}

#[test]
fn interpreter_missing_and_a_rule_that_takes_its_own_interpreter() {
    let m = Fake::new()
        .file("/srv/prog", program("arm64"), 0o755)
        .handler(entry("arm64", QEMU, "", true));
    let d = diagnose(&m, None, "/srv/prog");
    expect(
        &d,
        Cause::InterpreterMissing,
        Some(Errno::ENOENT),
        &[&format!("but {QEMU} does not exist")],
        &["apt-get install qemu-user-static && binfmt-setup install --arch arm64"],
    );
    assert_eq!(d.chain[1].role, Role::BinfmtInterpreter);
    // An interpreter its own rule takes: exec goes round until the kernel gives up.
    let m = with_arm64()
        .file(QEMU, program("arm64"), 0o755)
        .handler(entry("arm64", QEMU, "", true));
    let d = diagnose(&m, None, "/srv/prog");
    expect(
        &d,
        Cause::InterpreterMissing,
        Some(Errno::ELOOP),
        &["more than 5 times"],
        &["matches its own interpreter"],
    );
}

#[test]
fn interpreter_not_in_root() {
    let m = with_arm64()
        .file("/srv/root/bin/prog", program("arm64"), 0o755)
        .handler(entry("arm64", QEMU, "", true));
    let d = diagnose(&m, Some("/srv/root"), "/bin/prog");
    expect(
        &d,
        Cause::InterpreterNotInRoot,
        Some(Errno::ENOENT),
        &["without F the kernel opens", "/srv/root has no"],
        &[&format!("cp {QEMU} /srv/root{QEMU}")],
    );
    assert_eq!(d.root.as_deref(), Some("/srv/root"));
}

#[test]
fn interpreter_dynamic_without_loader_or_libraries() {
    let qemu = dynamic_program("amd64", LD, &["libglib-2.0.so.0"]);
    let m = Fake::new()
        .file("/usr/bin/qemu-aarch64", qemu, 0o755)
        .file("/srv/root/bin/prog", program("arm64"), 0o755)
        .handler(entry("arm64", "/usr/bin/qemu-aarch64", "F", true));
    let d = diagnose(&m, Some("/srv/root"), "/bin/prog");
    expect(
        &d,
        Cause::InterpreterDynamic,
        Some(Errno::ENOENT),
        &[
            "is dynamically linked and its own loader",
            "F spares the interpreter's path",
        ],
        &["qemu-user-static"],
    );
    // The loader is there, its libraries are not: exec succeeds, the loader fails.
    let m = m.file(format!("/srv/root{LD}"), program("amd64"), 0o755);
    let d = diagnose(&m, Some("/srv/root"), "/bin/prog");
    expect(
        &d,
        Cause::InterpreterDynamic,
        None,
        &["its libraries are not: libglib-2.0.so.0"],
        &[],
    );
    assert!(
        d.error
            .as_deref()
            .unwrap_or_default()
            .contains("error while loading shared libraries"),
        "{d:#?}"
    );
    // Outside a root it works, with a note that it would not inside one.
    let m = m
        .file("/srv/prog", program("arm64"), 0o755)
        .file(LD, program("amd64"), 0o755)
        .file("/usr/lib/libglib-2.0.so.0", Vec::new(), 0o644);
    let d = diagnose(&m, None, "/srv/prog");
    expect(&d, Cause::Ok, None, &[], &[]);
    assert!(
        d.notes.iter().any(|n| n.contains("INTERPRETER_DYNAMIC")),
        "{d:#?}"
    );
}

#[test]
fn loader_missing_native_and_emulated() {
    let m = Fake::new()
        .file(
            "/usr/bin/prog",
            dynamic_program("amd64", LD, &["libc.so.6"]),
            0o755,
        )
        .file(
            "/srv/arm",
            dynamic_program("arm64", "/lib/ld-linux-aarch64.so.1", &[]),
            0o755,
        )
        .file(QEMU, program("amd64"), 0o755)
        .handler(entry("arm64", QEMU, "F", true));
    let d = diagnose(&m, None, "/usr/bin/prog");
    expect(
        &d,
        Cause::LoaderMissing,
        Some(Errno::ENOENT),
        &[&format!("its loader {LD} is not on this system")],
        &["libc6:amd64"],
    );
    assert_eq!(d.chain[1].role, Role::Loader);
    // QEMU opens the emulated program's loader itself: exec succeeds, QEMU says so.
    let d = diagnose(&m, None, "/srv/arm");
    expect(
        &d,
        Cause::LoaderMissing,
        None,
        &["the emulator starts but cannot load the program"],
        &["libc6:arm64"],
    );
    assert!(
        d.error
            .as_deref()
            .unwrap_or_default()
            .starts_with("qemu-aarch64-static: Could not open"),
        "{d:#?}"
    );
    // Under QEMU_LD_PREFIX it is found.
    let m = m.env_var("QEMU_LD_PREFIX", "/usr/aarch64-linux-gnu").file(
        "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1",
        program("arm64"),
        0o755,
    );
    expect(&diagnose(&m, None, "/srv/arm"), Cause::Ok, None, &[], &[]);
}

#[test]
fn shebang_interpreter_missing_direct_and_through_env() {
    let m = Fake::new()
        .file("/srv/py", b"#!/usr/bin/python3\nprint(1)\n".to_vec(), 0o755)
        .file("/srv/tool", b"#!/usr/bin/env nosuch\n".to_vec(), 0o755)
        .file("/usr/bin/env", program("amd64"), 0o755)
        .env_var("PATH", "/usr/bin");
    let d = diagnose(&m, None, "/srv/py");
    expect(
        &d,
        Cause::ShebangInterpreterMissing,
        Some(Errno::ENOENT),
        &["a script for /usr/bin/python3, which does not exist"],
        &["apt-get install python3", "'#!' line of /srv/py"],
    );
    // env starts, so exec succeeds; env then finds no command.
    let d = diagnose(&m, None, "/srv/tool");
    expect(
        &d,
        Cause::ShebangInterpreterMissing,
        None,
        &["no nosuch in PATH"],
        &["install nosuch"],
    );
    assert_eq!(
        d.error.as_deref(),
        Some("/usr/bin/env: 'nosuch': No such file or directory")
    );
}

#[test]
fn shebang_crlf_in_the_interpreter_and_in_its_argument() {
    let m = Fake::new()
        .file("/bin/sh", program("amd64"), 0o755)
        .file("/usr/bin/env", program("amd64"), 0o755)
        .file("/srv/dos", b"#!/bin/sh\r\necho\r\n".to_vec(), 0o755)
        .file("/srv/dos-env", b"#!/usr/bin/env sh\r\n".to_vec(), 0o755);
    let d = diagnose(&m, None, "/srv/dos");
    expect(
        &d,
        Cause::ShebangCrlf,
        Some(Errno::ENOENT),
        &["Windows line endings", "(only /bin/sh does)"],
        &["sed -i 's/\\r$//' /srv/dos", "dos2unix /srv/dos"],
    );
    let d = diagnose(&m, None, "/srv/dos-env");
    expect(
        &d,
        Cause::ShebangCrlf,
        None,
        &["is given 'sh\\r'"],
        &["dos2unix"],
    );
}

#[test]
fn unsupported_arch_and_unknown_machine() {
    let ilp32 = crate::probe::elf_image(crate::machine::testing::arch("arm64_ilp32"), &[0; 4]);
    let mut unknown = program("amd64");
    unknown[18..20].copy_from_slice(&0x1234u16.to_le_bytes());
    let m = Fake::new()
        .file("/srv/ilp32", ilp32, 0o755)
        .file("/srv/odd", unknown, 0o755);
    let d = diagnose(&m, None, "/srv/ilp32");
    expect(
        &d,
        Cause::UnsupportedArch,
        Some(Errno::ENOEXEC),
        &["no user-mode emulator for arm64_ilp32"],
        &["rebuild it for amd64"],
    );
    let d = diagnose(&m, None, "/srv/odd");
    expect(
        &d,
        Cause::UnsupportedArch,
        Some(Errno::ENOEXEC),
        &["e_machine 0x1234"],
        &["rebuild it for amd64"],
    );
}

#[test]
fn host_abi_unsupported_refused_or_not_asked() {
    let m = Fake::new().file("/srv/x32", program("x32"), 0o755);
    let d = diagnose(&m.clone().native("x32", false), None, "/srv/x32");
    expect(
        &d,
        Cause::HostAbiUnsupported,
        Some(Errno::ENOEXEC),
        &["built without x32 support", "was refused by this kernel"],
        &["boot a kernel with x32 support (CONFIG_X86_X32_ABI=y"],
    );
    let d = diagnose(
        &m.native_fails("x32", "no user namespaces"),
        None,
        "/srv/x32",
    );
    expect(
        &d,
        Cause::HostAbiUnsupported,
        Some(Errno::ENOEXEC),
        &["could not ask the kernel (no user namespaces)"],
        &["rebuild it for amd64"],
    );
}

#[test]
fn every_cause_has_a_test() {
    let missing: Vec<&str> = Cause::ALL
        .iter()
        .filter(|c| !COVERED.iter().any(|(covered, _)| covered == *c))
        .map(|c| c.as_str())
        .collect();
    assert!(missing.is_empty(), "no unit test for {missing:?}");
}
