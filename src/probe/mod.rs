//! Tiny static ELF programs of other architectures, written byte by byte, so the tool needs no
//! cross toolchain to find out what a host can run.
//!
//! Each probe is one PT_LOAD segment holding a few instructions that, with raw syscalls only,
//! write `argv[1]` (the token; empty when absent), `\n`, `argv[0]`, `\n` to stdout, then exit
//! with `40 + argc`: a run with one token exits 42 ([`EXIT_CODE`]), which proves the machine
//! code ran and read its own stack. The machine code lives in `isa/`, one file per CPU family.

pub mod check;
mod isa;
pub mod levels;
pub mod runner;

use crate::arch::{Arch, Endian};

/// The exit status of a probe run with one token.
pub const EXIT_CODE: i32 = 42;

/// Load address for probes: above any `vm.mmap_min_addr` and page aligned for every arch.
const BASE: u64 = 0x0040_0000;

/// Machine code for one echo probe, placed right after the ELF and program headers.
#[derive(Debug, Clone)]
pub(crate) struct Code {
    /// Instructions and any constant data they use.
    pub bytes: Vec<u8>,
    /// Offset of the entry point within `bytes` (ppc64 ELFv1 enters through a descriptor).
    pub entry: usize,
    /// e_flags to write instead of the table's, where the ABI needs other bits.
    pub e_flags: Option<u32>,
}

impl Code {
    /// Code entered at its first byte, with the table's e_flags.
    pub(crate) fn new(bytes: Vec<u8>) -> Code {
        Code {
            bytes,
            entry: 0,
            e_flags: None,
        }
    }
}

/// The address the first byte of [`Code::bytes`] is loaded at, for code that needs absolute
/// addresses (a ppc64 ELFv1 function descriptor, a literal pool).
#[allow(dead_code)] // used by the families whose code needs absolute addresses
pub(crate) fn code_address(arch: &Arch) -> u64 {
    let (ehsize, phsize) = if arch.class == 64 { (64, 56) } else { (52, 32) };
    BASE + ehsize + phsize
}

/// The echo probe for `arch`, or `None` when there is none for it.
pub fn program(arch: &Arch) -> Option<Vec<u8>> {
    let code = isa::code(arch)?;
    Some(image(
        arch,
        &code.bytes,
        code.entry,
        code.e_flags.unwrap_or(arch.flags),
    ))
}

/// What an echo probe run as `argv0 token` writes to stdout.
pub fn expected_output(token: &str, argv0: &str) -> String {
    format!("{token}\n{argv0}\n")
}

/// Wrap machine code in the smallest ELF the kernel and QEMU accept: header, one program
/// header, code. Identity fields come from the table row, so the table's rule matches it.
pub fn elf_image(arch: &Arch, code: &[u8]) -> Vec<u8> {
    image(arch, code, 0, arch.flags)
}

fn image(arch: &Arch, code: &[u8], entry_offset: usize, e_flags: u32) -> Vec<u8> {
    let is64 = arch.class == 64;
    let (ehsize, phsize) = if is64 { (64usize, 56usize) } else { (52, 32) };
    let code_at = ehsize + phsize;
    let total = code_at + code.len();
    let entry = BASE + (code_at + entry_offset) as u64;
    let mut out = Vec::with_capacity(total);
    let le = arch.endian == Endian::Little;
    let u16b = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let u32b = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let u64b = |v: u64| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let word = |out: &mut Vec<u8>, v: u64| {
        if is64 {
            out.extend_from_slice(&u64b(v));
        } else {
            out.extend_from_slice(&u32b(v as u32));
        }
    };
    out.extend_from_slice(b"\x7fELF");
    out.push(if is64 { 2 } else { 1 });
    out.push(if le { 1 } else { 2 });
    out.push(1); // EI_VERSION
    out.extend_from_slice(&[0; 9]); // OSABI SYSV, ABI version, padding
    out.extend_from_slice(&u16b(2)); // ET_EXEC
    out.extend_from_slice(&u16b(arch.machine[0]));
    out.extend_from_slice(&u32b(1));
    word(&mut out, entry);
    word(&mut out, ehsize as u64); // e_phoff
    word(&mut out, 0); // e_shoff
    out.extend_from_slice(&u32b(e_flags));
    out.extend_from_slice(&u16b(ehsize as u16));
    out.extend_from_slice(&u16b(phsize as u16));
    out.extend_from_slice(&u16b(1)); // e_phnum
    out.extend_from_slice(&u16b(if is64 { 64 } else { 40 })); // e_shentsize
    out.extend_from_slice(&u16b(0)); // e_shnum
    out.extend_from_slice(&u16b(0)); // e_shstrndx
    // PT_LOAD, R+X, the whole file at BASE. 32- and 64-bit program headers order fields
    // differently (p_flags comes second in ELF64).
    let (pt_load, pf_rx) = (1u32, 5u32);
    out.extend_from_slice(&u32b(pt_load));
    if is64 {
        out.extend_from_slice(&u32b(pf_rx));
    }
    word(&mut out, 0); // p_offset
    word(&mut out, BASE); // p_vaddr
    word(&mut out, BASE); // p_paddr
    word(&mut out, total as u64); // p_filesz
    word(&mut out, total as u64); // p_memsz
    if !is64 {
        out.extend_from_slice(&u32b(pf_rx));
    }
    word(&mut out, 0x1_0000); // p_align
    out.extend_from_slice(code);
    out
}

/// Tests: run `probe` directly under `qemu-<cpu>-static` (no binfmt_misc involved) with
/// `args` (`PROBE` standing for the probe's path); return (exit code, stdout).
#[cfg(test)]
pub(crate) fn run_under_qemu(arch: &Arch, probe: &[u8], args: &[&str]) -> (Option<i32>, String) {
    use crate::sys::exec::{self, Ending, Spec};
    use std::os::unix::fs::PermissionsExt;
    let qemu = format!(
        "/usr/bin/qemu-{}-static",
        arch.qemu.as_deref().expect("qemu")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("probe-{}", arch.name));
    std::fs::write(&path, probe).expect("write probe");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let argv = std::iter::once(qemu.as_str())
        .chain(args.iter().copied())
        .map(|a| {
            if a == "PROBE" {
                path.as_os_str()
            } else {
                std::ffi::OsStr::new(a)
            }
        });
    let out = exec::run(
        &Spec::new(&qemu).argv(argv),
        Some(std::time::Duration::from_secs(30)),
    )
    .unwrap_or_else(|e| panic!("run {qemu}: {e}"));
    let code = match out.ending {
        Ending::Exited(c) => Some(c),
        _ => None,
    };
    (code, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchTable;

    fn run_under_qemu(arch: &Arch, probe: &[u8], qemu_opts: &[&str]) -> (Option<i32>, String) {
        let mut args = qemu_opts.to_vec();
        args.extend(["-0", "argv0-of-probe", "PROBE", "tok-3141"]);
        super::run_under_qemu(arch, probe, &args)
    }

    /// Every arch QEMU can emulate has an echo probe, and so do the host ABIs (x32).
    #[test]
    fn every_emulated_arch_has_a_probe() {
        let t = ArchTable::embedded();
        let missing: Vec<&str> = t
            .iter()
            .filter(|a| a.qemu.is_some() || a.name == "x32")
            .filter(|a| program(a).is_none())
            .map(|a| a.name.as_str())
            .collect();
        assert!(missing.is_empty(), "no probe for {missing:?}");
    }

    /// Every echo probe that exists prints its token and argv[0] and exits 42 under QEMU.
    #[test]
    fn every_echo_probe_runs_under_qemu() {
        let t = ArchTable::embedded();
        let want = expected_output("tok-3141", "argv0-of-probe");
        for a in t.iter().filter(|a| a.qemu.is_some()) {
            let Some(p) = program(a) else { continue };
            let (code, stdout) = run_under_qemu(a, &p, &[]);
            assert_eq!(
                (code, stdout.as_str()),
                (Some(EXIT_CODE), want.as_str()),
                "{} probe under qemu-{}",
                a.name,
                a.qemu.as_deref().unwrap_or_default()
            );
        }
    }

    #[test]
    fn probes_are_matched_by_their_own_rule_and_are_tiny() {
        let t = ArchTable::embedded();
        for a in t.iter() {
            if let Some(p) = program(a) {
                assert!(a.matches(&p), "{} probe not matched by its rule", a.name);
                assert!(p.len() < 1024, "{} probe is {} bytes", a.name, p.len());
            }
        }
    }
}
