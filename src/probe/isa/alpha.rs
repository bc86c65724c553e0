//! Echo-probe machine code for Alpha (64-bit, little-endian).
//!
//! At entry `sp` points at argc (a quadword), then argv[0], argv[1], ..., NULL. `callsys`
//! takes the number in `v0` and arguments in `a0..a2`; it may clobber the temporaries and the
//! argument registers, so the probe keeps its state in `s0..s3`. Syscalls: write 4, exit 1.
//! `ldbu` needs the BWX extension, which QEMU's default CPU (ev67) has.

use crate::arch::Arch;
use crate::probe::Code;

/// `lda s3, 0(s3)`; the displacement to the data is filled in by [`code`].
const LDA_S3_S3: u32 = 0x218c_0000;
/// Index of that `lda` in [`WORDS`]; it runs at the address `br` left in `s3`.
const LDA_AT: usize = 4;

/// The instructions. The loop prints argv[i] for i = 1 then 0, using the "\0" in the data
/// when i >= argc, so a missing argument prints as an empty line and is never dereferenced.
const WORDS: [u32; 28] = [
    0xa53e_0000, //        ldq    s0, 0(sp)       argc
    0x215e_0008, //        lda    s1, 8(sp)       &argv[0]
    0x217f_0001, //        lda    s2, 1           i = 1
    0xc180_0000, //        br     s3, 1f          s3 = address of 1f
    LDA_S3_S3,   // 1:     lda    s3, data-1b(s3) s3 = &"\n\0"
    0x416a_0641, // loop:  s8addq s2, s1, t0      t0 = &argv[i]
    0xa621_0000, //        ldq    a1, 0(t0)       (argv[argc+1] is envp: still readable)
    0x4169_09a2, //        cmplt  s2, s0, t1      t1 = i < argc
    0x206c_0001, //        lda    t2, 1(s3)       t2 = &"\0"
    0x4443_0491, //        cmoveq t1, t2, a1      no such argument: the empty string
    0x2031_ffff, //        lda    t0, -1(a1)
    0x2841_0001, // scan:  ldbu   t1, 1(t0)
    0x4020_3401, //        addq   t0, 1, t0
    0xf45f_fffd, //        bne    t1, scan        t0 stops on the NUL
    0x4031_0532, //        subq   t0, a1, a2      a2 = strlen
    0x221f_0001, //        lda    a0, 1           stdout
    0x201f_0004, //        lda    v0, 4           write
    0x0000_0083, //        callsys
    0x221f_0001, //        lda    a0, 1
    0x47ec_0411, //        mov    s3, a1          "\n"
    0x225f_0001, //        lda    a2, 1
    0x201f_0004, //        lda    v0, 4           write
    0x0000_0083, //        callsys
    0x4160_352b, //        subq   s2, 1, s2
    0xf97f_ffec, //        bge    s2, loop
    0x4125_1410, //        addq   s0, 40, a0      40 + argc
    0x201f_0001, //        lda    v0, 1           exit
    0x0000_0083, //        callsys
];

pub(super) fn code(_arch: &Arch) -> Option<Code> {
    let data_disp = (WORDS.len() - LDA_AT) * 4;
    let mut bytes: Vec<u8> = WORDS
        .iter()
        .enumerate()
        .map(|(i, &w)| if i == LDA_AT { w | data_disp as u32 } else { w })
        .flat_map(u32::to_le_bytes)
        .collect();
    bytes.extend_from_slice(b"\n\0"); // data
    Some(Code::new(bytes))
}
