//! Echo-probe machine code for PA-RISC 1.1 (32-bit, big-endian).
//!
//! The stack grows up, and the kernel (and QEMU) hand `_start` argc in `%r25` and argv in
//! `%r24` (not `%r26`/`%r25` as for a C call; that is where `__libc_start_main` wants them).
//! Syscalls branch to the gateway page with `ble 0x100(%sr2, %r0)`, the number set in its
//! delay slot in `%r20`, arguments in `%r26, %r25, %r24`; `%r3..%r18` survive them. Syscalls:
//! write 4, exit 1. Every branch here executes its delay slot.

use crate::arch::Arch;
use crate::probe::Code;

/// `ldo 0(%r6), %r6`; [`code`] fills in the displacement to the data.
const LDO_R6_R6: u32 = 0x34c6_0000;
/// Index of that `ldo` in [`WORDS`]; `%r6` holds its own address when it runs.
const LDO_AT: usize = 5;

/// The instructions. The loop prints argv[i] for i = 1 then 0, using the "\0" in the data
/// when i >= argc, so a missing argument prints as an empty line and is never dereferenced.
const WORDS: [u32; 27] = [
    0x0819_0243, //        copy     %r25, %r3          argc
    0x0818_0244, //        copy     %r24, %r4          argv
    0x3405_0002, //        ldi      1, %r5             i = 1
    0xe8c0_0000, //        bl       .+8, %r6           %r6 = next address | privilege level
    0xd4c0_1c1e, //        depi     0, 31, 2, %r6      (delay slot) drop the privilege bits
    LDO_R6_R6,   //        ldo      data-.(%r6), %r6   %r6 = &"\n\0"
    0x0c85_2099, // loop:  ldwx,s   %r5(%r4), %r25     argv[i] (argv[argc+1] is envp: readable)
    0x0865_4880, //        comclr,< %r5, %r3, %r0      i < argc: skip the next instruction
    0x34d9_0002, //        ldo      1(%r6), %r25       no such argument: the empty string
    0x3727_3fff, //        ldo      -1(%r25), %r7
    0x0ce2_3028, // scan:  ldbs,mb  1(%r7), %r8
    0x8d00_3fed, //        comib,<> 0, %r8, scan       %r7 stops on the NUL
    0x0800_0240, //        nop                         (delay slot)
    0x0b27_0418, //        sub      %r7, %r25, %r24    strlen
    0x341a_0002, //        ldi      1, %r26            stdout
    0xe400_8200, //        ble      0x100(%sr2, %r0)
    0x3414_0008, //        ldi      4, %r20            (delay slot) write
    0x341a_0002, //        ldi      1, %r26
    0x0806_0259, //        copy     %r6, %r25          "\n"
    0x3418_0002, //        ldi      1, %r24
    0xe400_8200, //        ble      0x100(%sr2, %r0)
    0x3414_0008, //        ldi      4, %r20            (delay slot) write
    0xacbf_5f75, //        addib,>= -1, %r5, loop      i -= 1; again while i >= 0
    0x0800_0240, //        nop                         (delay slot)
    0x347a_0050, //        ldo      40(%r3), %r26      40 + argc
    0xe400_8200, //        ble      0x100(%sr2, %r0)
    0x3414_0002, //        ldi      1, %r20            (delay slot) exit
];

pub(super) fn code(_arch: &Arch) -> Option<Code> {
    // im14 keeps its sign in the lowest bit; the displacement here is positive.
    let data_disp = ((WORDS.len() - LDO_AT) * 4) as u32;
    let mut bytes: Vec<u8> = WORDS
        .iter()
        .enumerate()
        .map(|(i, &w)| if i == LDO_AT { w | data_disp << 1 } else { w })
        .flat_map(u32::to_be_bytes)
        .collect();
    bytes.extend_from_slice(b"\n\0"); // data
    Some(Code::new(bytes))
}
