//! Echo-probe machine code for MicroBlaze, big-endian (`microblaze`) and little-endian
//! (`microblazeel`): the same 32-bit words, stored in the arch's byte order.
//!
//! At entry `r1` (sp) points at argc, then argv[0], argv[1], ..., NULL. `brki r14, 8` is the
//! syscall: number in `r12`, arguments in `r5, r6, r7`, result in `r3`; it overwrites `r14`.
//! State lives in `r19..r22`, which survive it. Syscalls: write 4, exit 1. Only base
//! instructions are used (no barrel shifter); a branch ending in `d` runs its delay slot.

use crate::arch::Arch;
use crate::probe::Code;

/// `addik r22, r22, 0`; [`code`] fills in the displacement to the data.
const ADDIK_R22_R22: u32 = 0x32d6_0000;
/// Index of the `mfs r22, rpc` that the displacement is measured from.
const MFS_AT: usize = 3;

/// The instructions. The loop prints argv[i] for i = 1 then 0, using the "\0" in the data
/// when i >= argc, so a missing argument prints as an empty line and is never dereferenced.
const WORDS: [u32; 29] = [
    0xea61_0000,   //        lwi    r19, r1, 0     argc
    0x3281_0004,   //        addik  r20, r1, 4     &argv[0]
    0x32a0_0001,   //        addik  r21, r0, 1     i = 1
    0x96c0_8000,   //        mfs    r22, rpc       address of this instruction
    ADDIK_R22_R22, //        addik  r22, r22, data-(.-4)  &"\n\0"
    0x1075_a800,   // loop:  addk   r3, r21, r21
    0x1063_1800,   //        addk   r3, r3, r3     4 * i
    0xc8d4_1800,   //        lw     r6, r20, r3    argv[i] (argv[argc+1] is envp: readable)
    0x1493_a801,   //        cmp    r4, r19, r21   negative when argc > i
    0xbc44_0008,   //        blti   r4, 8          i < argc: keep argv[i]
    0x30d6_0001,   //        addik  r6, r22, 1     else the empty string "\0"
    0x30e6_ffff,   //        addik  r7, r6, -1
    0xe087_0001,   // scan:  lbui   r4, r7, 1
    0xbe24_fffc,   //        bneid  r4, scan
    0x30e7_0001,   //        addik  r7, r7, 1      (delay slot) r7 stops on the NUL
    0x14e6_3800,   //        rsubk  r7, r6, r7     strlen
    0x30a0_0001,   //        addik  r5, r0, 1      stdout
    0x3180_0004,   //        addik  r12, r0, 4     write
    0xb9cc_0008,   //        brki   r14, 8
    0x30a0_0001,   //        addik  r5, r0, 1
    0x30d6_0000,   //        addik  r6, r22, 0     "\n"
    0x30e0_0001,   //        addik  r7, r0, 1
    0x3180_0004,   //        addik  r12, r0, 4     write
    0xb9cc_0008,   //        brki   r14, 8
    0x32b5_ffff,   //        addik  r21, r21, -1
    0xbcb5_ffb0,   //        bgei   r21, loop
    0x30b3_0028,   //        addik  r5, r19, 40    40 + argc
    0x3180_0001,   //        addik  r12, r0, 1     exit
    0xb9cc_0008,   //        brki   r14, 8
];

pub(super) fn code(arch: &Arch) -> Option<Code> {
    let data_disp = ((WORDS.len() - MFS_AT) * 4) as u32;
    let patched: Vec<u32> = WORDS
        .iter()
        .enumerate()
        .map(|(i, &w)| if i == MFS_AT + 1 { w | data_disp } else { w })
        .collect();
    let mut bytes = super::words(&patched, arch.endian);
    bytes.extend_from_slice(b"\n\0"); // data
    Some(Code::new(bytes))
}
