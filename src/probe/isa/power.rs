//! Echo probes for Power: ppc64le (ELFv2), ppc64 (big-endian ELFv1) and 32-bit ppc.
//!
//! One program serves all three: r14 points at the argv[1] slot of the initial stack (r1);
//! each pass writes the string there (nothing when the slot is NULL) and a newline, then steps
//! back one slot; after argv[0] it exits with `40 + argc`. What differs is computed below: the
//! pointer width (ld/lwz, 64- or 32-bit compares, slot size), the byte order of the instruction
//! words, and, for ELFv1 ppc64, a function descriptor in front of the code that e_entry names.
//!
//! Power has no PC-relative load before ISA 3.1, so the newline's absolute address is built
//! with lis/ori from [`code_address`]. `sc` may clobber r0 and r3-r12 and cr0; r14 survives.

use crate::arch::Arch;
use crate::probe::{Code, code_address};

/// Offset of the newline byte from the first instruction.
const NEWLINE: u64 = 0x68;

pub(super) fn code(arch: &Arch) -> Option<Code> {
    let is64 = match arch.name.as_str() {
        "ppc64le" | "ppc64" => true,
        "ppc" => false,
        _ => return None,
    };
    // ELFv1 (ppc64 big-endian, e_flags 1): e_entry points at a descriptor {code, toc, env}.
    let descriptor = arch.name == "ppc64";
    let prefix: u64 = if descriptor { 24 } else { 0 };
    let base = code_address(arch);
    let text = base + prefix;
    let newline = u32::try_from(text + NEWLINE).expect("probe addresses fit in 32 bits");
    let (hi, lo) = (newline >> 16, newline & 0xffff);

    let ptr: u32 = if is64 { 8 } else { 4 };
    // ld rT, 0(rA) on 64-bit (DS form, offset 0); lwz rT, 0(rA) on 32-bit.
    let load =
        |rt: u32, ra: u32| (if is64 { 0xe800_0000 } else { 0x8000_0000 }) | rt << 21 | ra << 16;
    // The L bit makes cmpi/cmpl compare doublewords; 32-bit CPUs need it clear.
    let l = if is64 { 1 << 21 } else { 0 };
    let neg = |v: u32| v.wrapping_neg() & 0xffff;

    let words: [u32; 26] = [
        0x39c1_0000 | (2 * ptr), // 00: addi  r14, r1, 2*ptr  ; argv[1] slot
        // 04 top:
        load(4, 14),     // 04: ld    r4, 0(r14)  (ppc: lwz)
        0x38a0_0000,     // 08: li    r5, 0  ; length
        0x2c04_0000 | l, // 0c: cmpdi r4, 0  (ppc: cmpwi)
        0x4182_0024,     // 10: beq   nl (0x34)  ; NULL: no string
        // 14 len:
        0x7cc4_28ae, // 14: lbzx  r6, r4, r5
        0x2c06_0000, // 18: cmpwi r6, 0
        0x4182_000c, // 1c: beq   wr (0x28)
        0x38a5_0001, // 20: addi  r5, r5, 1
        0x4bff_fff0, // 24: b     len (0x14)
        // 28 wr:
        0x3860_0001, // 28: li    r3, 1
        0x3800_0004, // 2c: li    r0, 4  ; write
        0x4400_0002, // 30: sc  ; write(1, r4, r5)
        // 34 nl:
        0x3860_0001,            // 34: li    r3, 1
        0x3c80_0000 | hi,       // 38: lis   r4, newline@h
        0x6084_0000 | lo,       // 3c: ori   r4, r4, newline@l
        0x38a0_0001,            // 40: li    r5, 1
        0x3800_0004,            // 44: li    r0, 4
        0x4400_0002,            // 48: sc  ; write(1, "\n", 1)
        0x39ce_0000 | neg(ptr), // 4c: addi  r14, r14, -ptr
        0x7c0e_0840 | l,        // 50: cmpld r14, r1  (ppc: cmplw)
        0x4181_ffb0,            // 54: bgt   top (0x04)  ; argv[0] still to do
        load(3, 1),             // 58: ld    r3, 0(r1)  (ppc: lwz)  ; argc
        0x3863_0028,            // 5c: addi  r3, r3, 40
        0x3800_0001,            // 60: li    r0, 1  ; exit
        0x4400_0002,            // 64: sc  ; exit(40 + argc)
                                // 68 newline
    ];

    let mut bytes = Vec::with_capacity(prefix as usize + words.len() * 4 + 1);
    if descriptor {
        // {entry address, TOC (r2, unused), environment}, big-endian doublewords.
        for v in [text, 0, 0] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
    }
    bytes.extend(super::words(&words, arch.endian));
    bytes.push(b'\n');
    debug_assert_eq!(bytes.len() as u64, prefix + NEWLINE + 1);
    Some(Code::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchTable;

    #[test]
    fn ppc64_enters_through_a_descriptor_naming_the_code() {
        let t = ArchTable::embedded();
        let a = t.iter().find(|a| a.name == "ppc64").expect("ppc64");
        let c = code(a).expect("ppc64 code");
        let target = u64::from_be_bytes(c.bytes[c.entry..c.entry + 8].try_into().unwrap());
        assert_eq!(target, code_address(a) + 24);
        let le = t.iter().find(|a| a.name == "ppc64le").expect("ppc64le");
        let c_le = code(le).expect("ppc64le code");
        assert_eq!(
            c_le.bytes.len() + 24,
            c.bytes.len(),
            "ELFv2 needs no descriptor"
        );
    }
}
