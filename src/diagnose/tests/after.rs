//! The causes found at and after exec, on a fake machine: ILLEGAL_INSTRUCTION (predicted
//! from a program's records, and settled after a run by reruns), LIBRARY_MISSING,
//! TEXT_BUSY, SHEBANG_LOOP, SHEBANG_TOO_LONG, SETUID_NEEDS_CREDENTIAL.

use nix::errno::Errno;

use super::{QEMU, diagnose, expect, with_arm64};
use crate::diagnose::settle::settle;
use crate::diagnose::{Cause, RunOutcome};
use crate::machine::testing::{dynamic_program, entry, program, table};
use crate::machine::{Fake, Node};

/// `elf` (a 64-bit little-endian probe image, which has no sections) with one section of
/// type `kind` holding `data`, and a section table naming nothing.
fn with_section(mut elf: Vec<u8>, kind: u32, data: &[u8]) -> Vec<u8> {
    let data_at = elf.len() as u64;
    elf.extend_from_slice(data);
    while elf.len() % 8 != 0 {
        elf.push(0);
    }
    let table_at = elf.len() as u64;
    elf.extend_from_slice(&[0; 64]); // the null section
    let mut sh = Vec::new();
    sh.extend_from_slice(&0u32.to_le_bytes());
    sh.extend_from_slice(&kind.to_le_bytes());
    sh.extend_from_slice(&[0; 16]); // flags, addr
    sh.extend_from_slice(&data_at.to_le_bytes());
    sh.extend_from_slice(&(data.len() as u64).to_le_bytes());
    sh.extend_from_slice(&[0; 24]); // link, info, addralign, entsize
    elf.extend_from_slice(&sh);
    elf[0x28..0x30].copy_from_slice(&table_at.to_le_bytes());
    elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    elf[0x3c..0x3e].copy_from_slice(&2u16.to_le_bytes());
    elf[0x3e..0x40].copy_from_slice(&0u16.to_le_bytes());
    elf
}

/// A riscv64 program whose Tag_RISCV_arch says it uses vectors, as clang -march=rv64gcv
/// writes it.
fn rvv_program() -> Vec<u8> {
    let mut attrs = vec![5u8];
    attrs.extend_from_slice(b"rv64i2p0_m2p0_a2p0_f2p0_d2p0_c2p0_v1p0\0");
    let mut file = vec![1u8];
    file.extend_from_slice(&((attrs.len() + 5) as u32).to_le_bytes());
    file.extend_from_slice(&attrs);
    let mut section = vec![b'A'];
    section.extend_from_slice(&((file.len() + 10) as u32).to_le_bytes());
    section.extend_from_slice(b"riscv\0");
    section.extend_from_slice(&file);
    with_section(program("riscv64"), 0x7000_0003, &section)
}

/// Each cause of this file (they are also listed in `COVERED`).
#[test]
fn after_exec_causes() {
    illegal_instruction_predicted_and_proven_by_a_rerun();
    library_missing_native_and_emulated();
    text_busy_names_the_writer();
    shebang_loop_itself_and_through_another();
    shebang_too_long_past_the_kernels_buffer();
    setuid_needs_credential_without_c_only();
}

const RISCV_QEMU: &str = "/usr/bin/qemu-riscv64-static";

fn outcome(exit: Option<i32>, signal: Option<&str>, stderr: &str) -> RunOutcome {
    RunOutcome {
        errno: None,
        exit,
        signal: signal.map(String::from),
        timed_out: false,
        stdout: String::new(),
        stderr: stderr.into(),
    }
}

pub(super) fn illegal_instruction_predicted_and_proven_by_a_rerun() {
    // QEMU's default riscv64 CPU: rv64gc, zba, zbb, zbs; no vectors.
    let m = Fake::new()
        .file("/srv/rvv", rvv_program(), 0o755)
        .file(RISCV_QEMU, program("amd64"), 0o755)
        .handler(entry("riscv64", RISCV_QEMU, "F", true))
        .levels("riscv64", 0b1111);
    let mut d = diagnose(&m, None, "/srv/rvv");
    expect(
        &d,
        Cause::IllegalInstruction,
        None,
        &["it needs rva20u64 + v (from riscv_attributes", "lacking v"],
        &["QEMU_CPU=rv64,v=true"],
    );
    assert_eq!(d.qemu_cpu.as_ref().map(|q| q.proven), Some(false), "{d:#?}");
    // --run: it dies of SIGILL, as predicted; the rerun with the candidate runs it.
    let ran = outcome(None, Some("SIGILL"), "qemu: uncaught target signal 4");
    let tried = std::cell::RefCell::new(Vec::new());
    let rerun = |k: &str, v: &str| {
        tried.borrow_mut().push(format!("{k}={v}"));
        Ok(outcome(Some(42), None, ""))
    };
    let agrees = settle(&mut d, &ran, &m, table(), &rerun).expect("settle");
    assert!(agrees, "{d:#?}");
    assert_eq!(*tried.borrow(), ["QEMU_CPU=rv64,v=true"]);
    assert_eq!(d.qemu_cpu.as_ref().map(|q| q.proven), Some(true), "{d:#?}");
    assert!(
        d.fix.as_deref().unwrap_or_default().contains("proven"),
        "{d:#?}"
    );

    // Nothing recorded (a POWER10 program): predicted OK, the run shows SIGILL, and the
    // cause is revised; POWER10 is tried past the default POWER9.
    let ppc = "/usr/bin/qemu-ppc64le-static";
    let m = Fake::new()
        .file("/srv/p10", program("ppc64le"), 0o755)
        .file(ppc, program("amd64"), 0o755)
        .handler(entry("ppc64le", ppc, "F", true))
        .levels("ppc64le", 0b011);
    let mut d = diagnose(&m, None, "/srv/p10");
    assert_eq!(d.cause, Cause::Ok, "{d:#?}");
    let agrees = settle(&mut d, &ran, &m, table(), &|_, v| {
        Ok(outcome(
            if v == "power10" { Some(42) } else { None },
            None,
            "",
        ))
    })
    .expect("settle");
    assert!(!agrees);
    assert_eq!(
        (d.cause, d.predicted),
        (Cause::IllegalInstruction, Some(Cause::Ok))
    );
    assert_eq!(
        d.qemu_cpu.as_ref().map(|q| q.value.as_str()),
        Some("power10")
    );
}

pub(super) fn library_missing_native_and_emulated() {
    let ld = super::LD;
    let m = Fake::new()
        .file(ld, program("amd64"), 0o755)
        .file(
            "/srv/app",
            dynamic_program("amd64", ld, &["libbinfmt-none.so.1", "libc.so.6"]),
            0o755,
        )
        .file("/usr/lib/libc.so.6", Vec::new(), 0o644);
    let d = diagnose(&m, None, "/srv/app");
    expect(
        &d,
        Cause::LibraryMissing,
        None,
        &["libraries it needs are not on this system: libbinfmt-none.so.1"],
        &["apt-file search libbinfmt-none.so.1"],
    );
    assert!(
        d.error
            .as_deref()
            .unwrap_or_default()
            .contains("cannot open shared object file")
    );
    // An arm64 root with the loader and no libc: QEMU starts, the loader gives up.
    let arm_ld = "/lib/ld-linux-aarch64.so.1";
    let m = with_arm64()
        .file(
            "/srv/root/bin/app",
            dynamic_program("arm64", arm_ld, &["libc.so.6"]),
            0o755,
        )
        .file(format!("/srv/root{arm_ld}"), program("arm64"), 0o755)
        .handler(entry("arm64", QEMU, "F", true));
    let d = diagnose(&m, Some("/srv/root"), "/bin/app");
    expect(
        &d,
        Cause::LibraryMissing,
        None,
        &["in the root /srv/root: libc.so.6"],
        &["libc.so.6 (Debian: libc6:arm64)"],
    );
}

pub(super) fn text_busy_names_the_writer() {
    let m = Fake::new()
        .file("/srv/prog", program("amd64"), 0o755)
        .writer("/srv/prog", 4242, "cp");
    let d = diagnose(&m, None, "/srv/prog");
    expect(
        &d,
        Cause::TextBusy,
        Some(Errno::ETXTBSY),
        &["open for writing by cp (pid 4242)"],
        &["kill 4242"],
    );
}

pub(super) fn shebang_loop_itself_and_through_another() {
    let m = Fake::new()
        .file("/srv/self", b"#!/srv/self\n".to_vec(), 0o755)
        .file("/srv/a", b"#!/srv/b\n".to_vec(), 0o755)
        .file("/srv/b", b"#!/srv/a\n".to_vec(), 0o755);
    for p in ["/srv/self", "/srv/a"] {
        let d = diagnose(&m, None, p);
        expect(
            &d,
            Cause::ShebangLoop,
            Some(Errno::ELOOP),
            &["lead back to a script already on the way"],
            &["at a real program"],
        );
    }
}

pub(super) fn shebang_too_long_past_the_kernels_buffer() {
    let long = format!("#!/{}\nexit 7\n", "d".repeat(300));
    let fits = format!("#!/{}\nexit 7\n", "d".repeat(252));
    let m = Fake::new()
        .file("/srv/long", long.into_bytes(), 0o755)
        .file("/srv/fits", fits.into_bytes(), 0o755);
    let d = diagnose(&m, None, "/srv/long");
    expect(
        &d,
        Cause::ShebangTooLong,
        Some(Errno::ENOEXEC),
        &["within the first 256 bytes"],
        &["shorter interpreter path"],
    );
    // 253 bytes of path: the newline is the 256th byte, inside the buffer.
    let d = diagnose(&m, None, "/srv/fits");
    assert_eq!(d.cause, Cause::ShebangInterpreterMissing, "{d:#?}");
}

pub(super) fn setuid_needs_credential_without_c_only() {
    let m = Fake::new()
        .entry(
            "/srv/su",
            Node::file(program("arm64"), 0o4755).owned_by(0, 0),
        )
        .file(QEMU, program("amd64"), 0o755)
        .user(1000, 1000, &[]);
    let d = diagnose(
        &m.clone().handler(entry("arm64", QEMU, "F", true)),
        None,
        "/srv/su",
    );
    expect(
        &d,
        Cause::SetuidNeedsCredential,
        None,
        &["it is setuid (owner uid 0)", "has no C flag"],
        &["run it as the user it is setuid to", "SECURITY.md"],
    );
    let d = diagnose(
        &m.clone().handler(entry("arm64", QEMU, "OCF", true)),
        None,
        "/srv/su",
    );
    assert_eq!(d.cause, Cause::Ok, "{d:#?}");
    // Its owner loses nothing.
    let d = diagnose(
        &m.user(0, 0, &[]).handler(entry("arm64", QEMU, "F", true)),
        None,
        "/srv/su",
    );
    assert_eq!(d.cause, Cause::Ok, "{d:#?}");
}
