//! Echo probe for s390x.
//!
//! The initial stack is at r15: argc, then the argv pointers, 8 bytes each. r7 points at the
//! argv[1] slot; each pass writes the string there (nothing when the slot is NULL) and a
//! newline, then steps back one slot; after argv[0] it exits with `40 + argc`. Syscalls below
//! 256 carry their number in `svc` itself, take arguments in r2-r6 and return in r2; the rest
//! of the registers survive. Instructions are 2, 4 or 6 bytes, big-endian, halfword aligned.

use crate::arch::Arch;
use crate::probe::Code;

pub(super) fn code(arch: &Arch) -> Option<Code> {
    if arch.name != "s390x" {
        return None;
    }
    let parts: &[&[u8]] = &[
        &[0x41, 0x70, 0xf0, 0x10], // 00: la    %r7, 16(%r15)  ; argv[1] slot
        // 04 top:
        &[0xe3, 0x30, 0x70, 0x00, 0x00, 0x04], // 04: lg    %r3, 0(%r7)
        &[0xa7, 0x49, 0x00, 0x00],             // 0a: lghi  %r4, 0  ; length
        &[0xb9, 0x02, 0x00, 0x33],             // 0e: ltgr  %r3, %r3
        &[0xa7, 0x84, 0x00, 0x0f],             // 12: je    nl (0x30)  ; NULL: no string
        // 16 len:
        &[0xe3, 0x14, 0x30, 0x00, 0x00, 0x94], // 16: llc   %r1, 0(%r4,%r3)
        &[0x12, 0x11],                         // 1c: ltr   %r1, %r1
        &[0xa7, 0x84, 0x00, 0x06],             // 1e: je    wr (0x2a)
        &[0xa7, 0x4b, 0x00, 0x01],             // 22: aghi  %r4, 1
        &[0xa7, 0xf4, 0xff, 0xf8],             // 26: j     len (0x16)
        // 2a wr:
        &[0xa7, 0x29, 0x00, 0x01], // 2a: lghi  %r2, 1
        &[0x0a, 0x04],             // 2e: svc   4  ; write(1, r3, r4)
        // 30 nl:
        &[0xa7, 0x29, 0x00, 0x01],             // 30: lghi  %r2, 1
        &[0xc0, 0x30, 0x00, 0x00, 0x00, 0x12], // 34: larl  %r3, newline (0x58)
        &[0xa7, 0x49, 0x00, 0x01],             // 3a: lghi  %r4, 1
        &[0x0a, 0x04],                         // 3e: svc   4  ; write(1, "\n", 1)
        &[0xa7, 0x7b, 0xff, 0xf8],             // 40: aghi  %r7, -8
        &[0xb9, 0x21, 0x00, 0x7f],             // 44: clgr  %r7, %r15
        &[0xa7, 0x24, 0xff, 0xde],             // 48: jh    top (0x04)  ; argv[0] still to do
        &[0xe3, 0x20, 0xf0, 0x00, 0x00, 0x04], // 4c: lg    %r2, 0(%r15)  ; argc
        &[0xa7, 0x2b, 0x00, 0x28],             // 52: aghi  %r2, 40
        &[0x0a, 0x01],                         // 56: svc   1  ; exit(40 + argc)
        b"\n",                                 // 58 newline:
    ];
    Some(Code {
        bytes: parts.concat(),
        entry: 0,
        e_flags: None,
    })
}
