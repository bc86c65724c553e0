//! Echo probes for RISC-V: riscv64 and riscv32 share one program.
//!
//! s1 points at the argv[1] slot of the initial stack (sp: argc, then the argv pointers, XLEN
//! bytes each); each pass writes the string there (nothing when the slot is NULL) and a
//! newline, then steps back one slot; after argv[0] it exits with `40 + argc`. Only the
//! pointer loads (ld/lw) and the slot size differ, so Rust fills those fields in. Base ISA
//! only, no compressed instructions. Syscalls: number in a7, `ecall`, only a0 changes; write
//! is 64, exit 93. Instruction words are little-endian.

use crate::arch::{Arch, Endian};
use crate::probe::Code;

pub(super) fn code(arch: &Arch) -> Option<Code> {
    let ptr: i32 = match arch.name.as_str() {
        "riscv64" => 8,
        "riscv32" => 4,
        _ => return None,
    };
    // funct3 of the pointer-sized load: ld (3) on RV64, lw (2) on RV32.
    let load = if ptr == 8 { 3 << 12 } else { 2 << 12 };
    // I-type immediate field.
    let imm = |v: i32| (v as u32 & 0xfff) << 20;

    let words: [u32; 24] = [
        0x0001_0493 | imm(2 * ptr), // 00: addi  s1, sp, 2*ptr  ; argv[1] slot
        // 04 top:
        0x0004_8583 | load, // 04: ld    a1, 0(s1)  (rv32: lw)
        0x0000_0613,        // 08: li    a2, 0  ; length
        0x0205_8263,        // 0c: beqz  a1, nl (0x30)  ; NULL: no string
        // 10 len:
        0x00c5_82b3, // 10: add   t0, a1, a2
        0x0002_c303, // 14: lbu   t1, 0(t0)
        0x0003_0663, // 18: beqz  t1, wr (0x24)
        0x0016_0613, // 1c: addi  a2, a2, 1
        0xff1f_f06f, // 20: j     len (0x10)
        // 24 wr:
        0x0010_0513, // 24: li    a0, 1
        0x0400_0893, // 28: li    a7, 64  ; write
        0x0000_0073, // 2c: ecall  ; write(1, a1, a2)
        // 30 nl:
        0x0010_0513,             // 30: li    a0, 1
        0x0000_0597,             // 34: auipc a1, 0
        0x02c5_8593,             // 38: addi  a1, a1, 44  ; newline (0x34 + 0x2c = 0x60)
        0x0010_0613,             // 3c: li    a2, 1
        0x0400_0893,             // 40: li    a7, 64
        0x0000_0073,             // 44: ecall  ; write(1, "\n", 1)
        0x0004_8493 | imm(-ptr), // 48: addi  s1, s1, -ptr
        0xfa91_6ce3,             // 4c: bltu  sp, s1, top (0x04)  ; argv[0] still to do
        0x0001_0503 | load,      // 50: ld    a0, 0(sp)  (rv32: lw)  ; argc
        0x0285_0513,             // 54: addi  a0, a0, 40
        0x05d0_0893,             // 58: li    a7, 93  ; exit
        0x0000_0073,             // 5c: ecall  ; exit(40 + argc)
                                 // 60 newline
    ];
    let mut bytes = super::words(&words, Endian::Little);
    bytes.push(b'\n');
    Some(Code::new(bytes))
}
