//! Tiny static ELF programs of other architectures, written byte by byte, so the tool needs no
//! cross toolchain to find out what a host can run.
//!
//! Each probe is one PT_LOAD segment holding a few instructions that call `exit(42)` through
//! the raw syscall interface; an exit status of 42 proves the instructions really ran.

use crate::arch::{Arch, Endian};

/// The exit status every probe returns.
pub const EXIT_CODE: i32 = 42;

/// Load address for probes: above any `vm.mmap_min_addr` and page aligned for every arch.
const BASE: u64 = 0x0040_0000;

/// Machine code for `exit(42)`, by canonical arch name. `None` where no probe exists yet.
fn exit_code(arch: &str) -> Option<Vec<u8>> {
    let words_le = |w: &[u32]| w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    Some(match arch {
        // mov eax, 60; mov edi, 42; syscall
        "amd64" => vec![0xb8, 60, 0, 0, 0, 0xbf, 42, 0, 0, 0, 0x0f, 0x05],
        // mov eax, 1; mov ebx, 42; int 0x80
        "386" => vec![0xb8, 1, 0, 0, 0, 0xbb, 42, 0, 0, 0, 0xcd, 0x80],
        // x32 syscalls are the amd64 numbers with bit 30 set (__X32_SYSCALL_BIT).
        "x32" => vec![0xb8, 60, 0, 0, 0x40, 0xbf, 42, 0, 0, 0, 0x0f, 0x05],
        // mov x0, #42; mov x8, #93; svc #0
        "arm64" => words_le(&[0xd280_0540, 0xd280_0ba8, 0xd400_0001]),
        // mov r0, #42; mov r7, #1; svc #0   (EABI)
        "arm" => words_le(&[0xe3a0_002a, 0xe3a0_7001, 0xef00_0000]),
        _ => return None,
    })
}

/// A complete probe executable for `arch`, or `None` if there is no probe for it yet.
pub fn exit_probe(arch: &Arch) -> Option<Vec<u8>> {
    let code = exit_code(&arch.name)?;
    Some(elf_image(arch, &code))
}

/// Wrap machine code in the smallest ELF the kernel and QEMU accept: header, one program
/// header, code. Identity fields come from the table row, so the table's rule matches it.
pub fn elf_image(arch: &Arch, code: &[u8]) -> Vec<u8> {
    let is64 = arch.class == 64;
    let (ehsize, phsize) = if is64 { (64usize, 56usize) } else { (52, 32) };
    let code_at = ehsize + phsize;
    let total = code_at + code.len();
    let entry = BASE + code_at as u64;
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
    out.extend_from_slice(&u32b(arch.flags));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchTable;

    #[test]
    fn probes_are_matched_by_their_own_rule_and_are_tiny() {
        let t = ArchTable::embedded();
        for a in t.iter() {
            if let Some(p) = exit_probe(a) {
                assert!(a.matches(&p), "{} probe not matched by its rule", a.name);
                assert!(p.len() < 1024, "{} probe is {} bytes", a.name, p.len());
            }
        }
    }
}
