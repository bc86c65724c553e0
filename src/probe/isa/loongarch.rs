//! Echo probe for LoongArch (loong64).
//!
//! $s0 points at the argv[1] slot of the initial stack ($sp: argc, then the argv pointers, 8
//! bytes each); each pass writes the string there (nothing when the slot is NULL) and a
//! newline, then steps back one slot; after argv[0] it exits with `40 + argc`. Syscalls:
//! number in $a7, `syscall 0`; the kernel may clobber $t0-$t8 but keeps $s0. write is 64,
//! exit 93. Instruction words are little-endian; `pcaddi` needs the newline word aligned.

use crate::arch::{Arch, Endian};
use crate::probe::Code;

pub(super) fn code(arch: &Arch) -> Option<Code> {
    if arch.name != "loong64" {
        return None;
    }
    let words: [u32; 22] = [
        0x02c0_4077, // 00: addi.d $s0, $sp, 16  ; argv[1] slot
        // 04 top:
        0x28c0_02e5, // 04: ld.d   $a1, $s0, 0
        0x0015_0006, // 08: move   $a2, $zero  ; length
        0x4000_20a0, // 0c: beqz   $a1, nl (0x2c)  ; NULL: no string
        // 10 len:
        0x3820_18ac, // 10: ldx.bu $t0, $a1, $a2
        0x4000_0d80, // 14: beqz   $t0, wr (0x20)
        0x02c0_04c6, // 18: addi.d $a2, $a2, 1
        0x53ff_f7ff, // 1c: b      len (0x10)
        // 20 wr:
        0x0380_0404, // 20: li.w   $a0, 1
        0x0381_000b, // 24: li.w   $a7, 64  ; write
        0x002b_0000, // 28: syscall 0  ; write(1, $a1, $a2)
        // 2c nl:
        0x0380_0404, // 2c: li.w   $a0, 1
        0x1800_0145, // 30: pcaddi $a1, 10  ; newline (0x30 + 10*4 = 0x58)
        0x0380_0406, // 34: li.w   $a2, 1
        0x0381_000b, // 38: li.w   $a7, 64
        0x002b_0000, // 3c: syscall 0  ; write(1, "\n", 1)
        0x02ff_e2f7, // 40: addi.d $s0, $s0, -8
        0x6bff_c077, // 44: bltu   $sp, $s0, top (0x04)  ; argv[0] still to do
        0x28c0_0064, // 48: ld.d   $a0, $sp, 0  ; argc
        0x02c0_a084, // 4c: addi.d $a0, $a0, 40
        0x0381_740b, // 50: li.w   $a7, 93  ; exit
        0x002b_0000, // 54: syscall 0  ; exit(40 + argc)
                     // 58 newline
    ];
    let mut bytes = super::words(&words, Endian::Little);
    bytes.push(b'\n');
    Some(Code::new(bytes))
}
