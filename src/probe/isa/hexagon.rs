//! Echo-probe machine code for Hexagon (32-bit, little-endian).
//!
//! At entry `r29` (sp) points at argc, then argv[0], argv[1], ..., NULL. `trap0(#1)` is the
//! syscall: number in `r6`, arguments in `r0..r2`, result in `r0`; state lives in
//! `r16..r19`. Syscalls are the generic table's: write 64, exit 93. Instructions issue in
//! packets `{ ... }`; bits 15:14 of a word mark the packet's last word (`11`). Branches have
//! no delay slots.
//!
//! e_flags name the Hexagon version. The table's 0x73 (v73) is what current toolchains write,
//! but older QEMU (7.2, Debian 12's) knows only v5..v67 and refuses anything else ("unable to
//! find CPU model 'unknown'"). The probe says v67, which every QEMU with Hexagon accepts and
//! which covers every instruction it uses; binfmt_misc's rule does not look at e_flags.

use crate::arch::{Arch, Endian};
use crate::probe::Code;

/// e_flags for Hexagon v67.
const EF_HEXAGON_MACH_V67: u32 = 0x67;

/// Offset of the `add(pc, ...)` packet; pc-relative operands count from a packet's start.
const PC_PACKET_AT: usize = 0x0c;
/// Its operand: the distance from that packet to the data.
const PC_TO_DATA: usize = 0x58;

/// The instructions, a packet per line or group. The loop prints argv[i] for i = 1 then 0,
/// using the "\0" in the data when i >= argc, so a missing argument prints as an empty line
/// and is never read.
const WORDS: [u32; 25] = [
    0x919d_c010, //        { r16 = memw(r29+#0) }        argc
    0xb01d_c091, //        { r17 = add(r29, #4) }        &argv[0]
    0x7800_c032, //        { r18 = #1 }                  i = 1
    0x0000_4001, //        { immext(#0x40)
    0x6a49_cc13, //          r19 = add(pc, ##0x58) }     &"\n\0"
    0xb013_c021, // loop:  { r1 = add(r19, #1) }         the empty string "\0"
    0xf250_d200, //        { p0 = cmp.gt(r16, r18) }     argc > i
    0x3091_f201, //        { if (p0) r1 = memw(r17+r18<<#2) }   then argv[i]
    0x7061_c002, //        { r2 = r1 }
    0x9b22_c023, // scan:  { r3 = memub(r2++#1) }
    0x1073_e0fe, //        { p0 = cmp.eq(r3, #0); if (!p0.new) jump:t scan }
    0xf321_c202, //        { r2 = sub(r2, r1) }          r2 went one past the NUL
    0xbfe2_ffe2, //        { r2 = add(r2, #-1) }         strlen
    0x7800_4020, //        { r0 = #1                     stdout
    0x7800_c806, //          r6 = #64 }                  write
    0x5400_c004, //        { trap0(#1) }
    0x7073_4001, //        { r1 = r19                    "\n"
    0x7800_4806, //          r6 = #64                    write
    0x2810_2812, //          r0 = #1; r2 = #1 }          (a duplex: two sub-instructions)
    0x5400_c004, //        { trap0(#1) }
    0xbff2_fff2, //        { r18 = add(r18, #-1) }
    0x11ba_e1e0, //        { p0 = cmp.gt(r18, #-1); if (p0.new) jump:t loop }
    0xb010_4500, //        { r0 = add(r16, #40)          40 + argc
    0x7800_cba6, //          r6 = #93 }                  exit
    0x5400_c004, //        { trap0(#1) }
];

pub(super) fn code(_arch: &Arch) -> Option<Code> {
    debug_assert_eq!(PC_PACKET_AT + PC_TO_DATA, WORDS.len() * 4);
    let mut bytes = super::words(&WORDS, Endian::Little);
    bytes.extend_from_slice(b"\n\0"); // data
    Some(Code {
        bytes,
        entry: 0,
        e_flags: Some(EF_HEXAGON_MACH_V67),
    })
}
