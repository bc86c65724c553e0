//! ppc64le levels: POWER8 (ISA 2.07, the baseline of every ppc64le distribution), POWER9
//! (ISA 3.0) and POWER10 (ISA 3.1).
//!
//! Checks (bit: instructions, and the Power ISA version that introduced them):
//! - 0 `power8`: VADDUDM (ISA 2.07 VMX), MTVSRD (ISA 2.07 VSX).
//! - 1 `power9`: CNTTZD, MODSD (ISA 3.0).
//! - 2 `power10`: PLI, a prefixed instruction (ISA 3.1; a prefix is primary opcode 1, illegal
//!   before), and BRD (ISA 3.1). A prefixed instruction must not cross a 64-byte boundary, so
//!   the slots start 64-byte aligned and PLI comes first in its slot.
//!
//! Encodings from powerpc64-linux-gnu-as (binutils 2.40, `-mpower10 -mlittle-endian`).
//!
//! Measured with QEMU 7.2 (`qemu-ppc64le-static -cpu MODEL PROBE; echo $?`, as
//! `level_probe_under_qemu_7_2` does): `power7`: none; `power8`: power8; `power9` and the
//! default (user mode picks POWER9): power9; `power10`: power10.

use super::{Family, Level, SLOT, le_words, slots};
use crate::arch::Arch;

pub const POWER8: &str = "power8";
pub const POWER9: &str = "power9";
pub const POWER10: &str = "power10";

pub static FAMILY: Family = Family {
    arch: "ppc64le",
    checks: &[POWER8, POWER9, POWER10],
    levels: &[
        Level {
            name: POWER8,
            needs: 0b001,
            variant: None,
            qemu_cpu: Some("power8"),
        },
        Level {
            name: POWER9,
            needs: 0b011,
            variant: None,
            qemu_cpu: Some("power9"),
        },
        Level {
            name: POWER10,
            needs: 0b111,
            variant: None,
            qemu_cpu: Some("power10"),
        },
    ],
};

const CHECKS: [&[u32]; 3] = [
    &[
        0x1000_00c0, // vaddudm v0, v0, v0
        0x7c03_0166, // mtvsrd  vs0, r3
    ],
    &[
        0x7c63_0474, // cnttzd  r3, r3
        0x7c63_2612, // modsd   r3, r3, r4
    ],
    &[
        0x0600_0000, // pli     r3, 0  (prefix word)
        0x3860_0000, //                (suffix word: addi r3, 0, 0)
        0x7c63_0176, // brd     r3, r3
    ],
];

/// Ends every slot.
const EXIT0: &[u32] = &[
    0x3860_0000, // li r3, 0
    0x3800_00ea, // li r0, 234  ; exit_group
    0x4400_0002, // sc
];

const NOP: u32 = 0x6000_0000;

/// Offset of the first byte after the dispatch code.
const SKELETON: u64 = 0xb4;

/// The level probe's machine code, for `arch` when it is this family's, to be loaded at
/// `start`.
pub(super) fn code(arch: &Arch, start: u64) -> Option<Vec<u8>> {
    if arch.name != "ppc64le" {
        return None;
    }
    let n = CHECKS.len() as u32;
    // Power has no PC-relative addressing before ISA 3.1: the slots' absolute address is built
    // with lis/ori, aligned to 64 bytes for PLI.
    let slots_at = (start + SKELETON).next_multiple_of(SLOT as u64);
    let addr = u32::try_from(slots_at).expect("probe addresses fit in 32 bits");
    let (hi, lo) = (addr >> 16, addr & 0xffff);
    // Syscalls: number in r0, `sc`, which may change r0, r3-r12 and cr0; a failure sets
    // cr0.SO and leaves a positive errno in r3 (a failed fork then waits for no child of
    // ours). prlimit64 325, fork 2, wait4 114, close 6, exit_group 234. r14 counts the
    // checks, r15 holds the mask; 32(r1) is the zeroed rlimit, 48(r1) the wait status.
    let words: [u32; 45] = [
        0x3821_ffc0, // 00: addi  r1, r1, -64
        0x3800_0000, // 04: li    r0, 0
        0xf801_0020, // 08: std   r0, 32(r1)
        0xf801_0028, // 0c: std   r0, 40(r1)
        0x3860_0000, // 10: li    r3, 0  ; ourselves
        0x3880_0004, // 14: li    r4, 4  ; RLIMIT_CORE
        0x38a1_0020, // 18: addi  r5, r1, 32
        0x38c0_0000, // 1c: li    r6, 0
        0x3800_0145, // 20: li    r0, 325
        0x4400_0002, // 24: sc  ; prlimit64(0, CORE, {0, 0}, 0)
        0x39c0_0000, // 28: li    r14, 0
        0x39e0_0000, // 2c: li    r15, 0
        // 30 loop:
        0x2c0e_0000 | n, // 30: cmpwi r14, n
        0x4182_0050,     // 34: beq   done (0x84)
        0x3800_0002,     // 38: li    r0, 2
        0x4400_0002,     // 3c: sc  ; fork()
        0x2c23_0000,     // 40: cmpdi r3, 0
        0x4182_004c,     // 44: beq   child (0x90)
        0x3920_0001,     // 48: li    r9, 1
        0x9121_0030,     // 4c: stw   r9, 48(r1)  ; "failed" unless wait4 says otherwise
        0x3881_0030,     // 50: addi  r4, r1, 48
        0x38a0_0000,     // 54: li    r5, 0
        0x38c0_0000,     // 58: li    r6, 0
        0x3800_0072,     // 5c: li    r0, 114
        0x4400_0002,     // 60: sc  ; wait4(pid, &status, 0, 0)
        0x8121_0030,     // 64: lwz   r9, 48(r1)
        0x2c09_0000,     // 68: cmpwi r9, 0
        0x4082_0010,     // 6c: bne   next (0x7c)
        0x3920_0001,     // 70: li    r9, 1
        0x7d29_7036,     // 74: sld   r9, r9, r14
        0x7def_4b78,     // 78: or    r15, r15, r9
        // 7c next:
        0x39ce_0001, // 7c: addi  r14, r14, 1
        0x4bff_ffb0, // 80: b     loop (0x30)
        // 84 done:
        0x386f_0064, // 84: addi  r3, r15, 100
        0x3800_00ea, // 88: li    r0, 234
        0x4400_0002, // 8c: sc  ; exit_group(100 + mask)
        // 90 child:
        0x3860_0002,      // 90: li    r3, 2
        0x3800_0006,      // 94: li    r0, 6
        0x4400_0002,      // 98: sc  ; close(2)
        0x3d20_0000 | hi, // 9c: lis   r9, slots@h
        0x6129_0000 | lo, // a0: ori   r9, r9, slots@l
        0x79ca_3664,      // a4: sldi  r10, r14, 6  ; i * SLOT
        0x7d29_5214,      // a8: add   r9, r9, r10
        0x7d29_03a6,      // ac: mtctr r9
        0x4e80_0420,      // b0: bctr
                          // b4: nops up to the aligned slots
    ];
    let mut code = le_words(&words);
    debug_assert_eq!(code.len() as u64, SKELETON);
    while (code.len() as u64) < slots_at - start {
        code.extend(NOP.to_le_bytes());
    }
    let checks: Vec<Vec<u8>> = CHECKS.iter().map(|c| le_words(c)).collect();
    let refs: Vec<&[u8]> = checks.iter().map(Vec::as_slice).collect();
    code.extend(slots(&refs, &NOP.to_le_bytes(), &le_words(EXIT0)));
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{arch, under_qemu};
    use super::*;
    use crate::probe::code_address;
    use crate::probe::levels::program;

    #[test]
    fn level_probe_under_qemu_7_2() {
        let a = arch("ppc64le");
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (Some("power7"), None),
            (Some("power8"), Some(POWER8)),
            (Some("power9"), Some(POWER9)),
            (Some("power10"), Some(POWER10)),
            (None, Some(POWER9)),
        ];
        for (cpu, want) in cases {
            let (levels, _) = under_qemu(&a, *cpu);
            assert_eq!(levels.last(), want.as_ref(), "-cpu {cpu:?}: {levels:?}");
        }
    }

    #[test]
    fn slots_are_64_byte_aligned() {
        let a = arch("ppc64le");
        let p = program(&a).expect("probe");
        let code = &p.image[(code_address(&a) - crate::probe::BASE) as usize..];
        let first = code
            .chunks(4)
            .position(|w| w == 0x1000_00c0u32.to_le_bytes())
            .expect("first check");
        assert_eq!((code_address(&a) + 4 * first as u64) % 64, 0);
    }
}
