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

/// Ends every slot: back to `ran`, whose address r16 holds.
const BACK: &[u32] = &[
    0x7e09_03a6, // mtctr r16
    0x4e80_0420, // bctr
];

const NOP: u32 = 0x6000_0000;

/// Offsets of `ran`, of `handler` and of the first byte after the dispatch code.
const RAN: u64 = 0xa4;
const HANDLER: u64 = 0xb8;
const SKELETON: u64 = 0xcc;

/// The level probe's machine code, for `arch` when it is this family's, to be loaded at
/// `start`.
pub(super) fn code(arch: &Arch, start: u64) -> Option<Vec<u8>> {
    if arch.name != "ppc64le" {
        return None;
    }
    let n = CHECKS.len() as u32;
    // Power has no PC-relative addressing before ISA 3.1: addresses are built with lis/ori;
    // the slots are aligned to 64 bytes for PLI.
    let slots_at = (start + SKELETON).next_multiple_of(SLOT as u64);
    let halves = |at: u64| {
        let addr = u32::try_from(at).expect("probe addresses fit in 32 bits");
        (addr >> 16, addr & 0xffff)
    };
    let (slots_hi, slots_lo) = halves(slots_at);
    let (ran_hi, ran_lo) = halves(start + RAN);
    let (handler_hi, handler_lo) = halves(start + HANDLER);
    // Syscalls: number in r0, `sc`, which may change r0, r3-r12 and cr0. prlimit64 325,
    // rt_sigaction 173, exit_group 234. A signal handler is entered with r1, r3-r6, r12, lr
    // and ctr possibly changed. r14 counts the checks, r15 holds the mask, r16 the address of
    // `ran`, r17 the stack pointer; 0(r1) is the sigaction (handler, flags, then zeros),
    // 32(r1) the zeroed rlimit.
    let words: [u32; 51] = [
        0x3821_ffc0,              // 00: addi r1, r1, -64
        0x3800_0000,              // 04: li r0, 0
        0xf801_0020,              // 08: std r0, 32(r1)
        0xf801_0028,              // 0c: std r0, 40(r1)
        0x3860_0000,              // 10: li r3, 0  ; ourselves
        0x3880_0004,              // 14: li r4, 4  ; RLIMIT_CORE
        0x38a1_0020,              // 18: addi r5, r1, 32
        0x38c0_0000,              // 1c: li r6, 0
        0x3800_0145,              // 20: li r0, 325
        0x4400_0002,              // 24: sc  ; prlimit64(0, CORE, {0, 0}, 0)
        0x3d20_0000 | handler_hi, // 28: lis r9, handler@h
        0x6129_0000 | handler_lo, // 2c: ori r9, r9, handler@l
        0xf921_0000,              // 30: std r9, 0(r1)  ; sa_handler
        0x3d20_4000,              // 34: lis r9, 0x4000  ; SA_NODEFER
        0xf921_0008,              // 38: std r9, 8(r1)  ; sa_flags
        0x3800_0000,              // 3c: li r0, 0
        0xf801_0010,              // 40: std r0, 16(r1)
        0xf801_0018,              // 44: std r0, 24(r1)
        0x39c0_0004,              // 48: li r14, 4  ; SIGILL
        // 4c signals:
        0x7dc3_7378,          // 4c: mr r3, r14
        0x7c24_0b78,          // 50: mr r4, r1
        0x38a0_0000,          // 54: li r5, 0
        0x38c0_0008,          // 58: li r6, 8
        0x3800_00ad,          // 5c: li r0, 173
        0x4400_0002,          // 60: sc  ; rt_sigaction(sig, &act, 0, 8)
        0x39ce_0001,          // 64: addi r14, r14, 1
        0x2c0e_000c,          // 68: cmpwi r14, 12
        0x4082_ffe0,          // 6c: bne signals (0x4c)  ; through SIGSEGV
        0x39c0_0000,          // 70: li r14, 0
        0x39e0_0000,          // 74: li r15, 0
        0x7c31_0b78,          // 78: mr r17, r1  ; the stack pointer the handler restores
        0x3e00_0000 | ran_hi, // 7c: lis r16, ran@h
        0x6210_0000 | ran_lo, // 80: ori r16, r16, ran@l
        // 84 loop:
        0x2c0e_0000 | n,        // 84: cmpwi r14, n
        0x4182_0038,            // 88: beq done (0xc0)
        0x3d20_0000 | slots_hi, // 8c: lis r9, slots@h
        0x6129_0000 | slots_lo, // 90: ori r9, r9, slots@l
        0x79ca_3664,            // 94: sldi r10, r14, 6  ; i * SLOT
        0x7d29_5214,            // 98: add r9, r9, r10
        0x7d29_03a6,            // 9c: mtctr r9
        0x4e80_0420,            // a0: bctr
        // a4 ran:
        0x3920_0001, // a4: li r9, 1
        0x7d29_7036, // a8: sld r9, r9, r14
        0x7def_4b78, // ac: or r15, r15, r9
        // b0 next:
        0x39ce_0001, // b0: addi r14, r14, 1
        0x4bff_ffd0, // b4: b loop (0x84)
        // b8 handler:
        0x7e21_8b78, // b8: mr r1, r17  ; drop the signal frame
        0x4bff_fff4, // bc: b next (0xb0)
        // c0 done:
        0x386f_0064, // c0: addi r3, r15, 100
        0x3800_00ea, // c4: li r0, 234
        0x4400_0002, // c8: sc  ; exit_group(100 + mask)
                     // cc: nops up to the aligned slots
    ];
    let mut code = le_words(&words);
    debug_assert_eq!(code.len() as u64, SKELETON);
    while (code.len() as u64) < slots_at - start {
        code.extend(NOP.to_le_bytes());
    }
    let checks: Vec<Vec<u8>> = CHECKS.iter().map(|c| le_words(c)).collect();
    let refs: Vec<&[u8]> = checks.iter().map(Vec::as_slice).collect();
    code.extend(slots(&refs, &NOP.to_le_bytes(), &le_words(BACK)));
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
