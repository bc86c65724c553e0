//! amd64 levels: the x86-64 psABI's microarchitecture levels v1 (baseline) to v4.
//!
//! Checks (bit: instructions, and where the psABI level list takes them from):
//! - 0 `x86-64-v2`: POPCNT, CRC32 (SSE4.2), PSHUFB (SSSE3), PMINSD (SSE4.1), LAHF in long
//!   mode (LAHF-SAHF), CMPXCHG16B (CX16). SSE3 has no instruction here of its own worth a
//!   check: every CPU with SSSE3 has it.
//! - 1 `x86-64-v3`: VPADDD ymm (AVX2), VFMADD231PS ymm (FMA), VCVTPH2PS (F16C), ANDN (BMI1),
//!   SHLX (BMI2), MOVBE. LZCNT is left out: where it is missing the same bytes decode as BSR
//!   and run, so it proves nothing. AVX needs the OS to enable the YMM state in XCR0; Linux
//!   does, and QEMU user mode acts as if it had.
//! - 2 `x86-64-v4`: EVEX VPADDD zmm (AVX-512F), VPADDW zmm (BW), VPMULLQ zmm (DQ), VPLZCNTD
//!   zmm (CD), VPADDD ymm16 (VL: a 256-bit EVEX form).
//!
//! Encodings from x86_64-linux-gnu-as (binutils 2.40) and llvm-mc-16, which agree.
//!
//! Measured with QEMU 7.2 (`qemu-x86_64-static -cpu MODEL PROBE; echo $?`, decoded by
//! [`super::Family::decode`], as `level_probe_under_qemu_7_2` does):
//! - `qemu64`: x86-64-v1 (no POPCNT).
//! - `Nehalem`, `Westmere`, `SandyBridge`: x86-64-v2.
//! - `Haswell`: x86-64-v3 (QEMU 7.2 is the first with AVX, AVX2 and FMA in TCG).
//! - `Skylake-Server`, `Icelake-Server`, `max` (user mode's default): x86-64-v3. TCG has no
//!   AVX-512 (QEMU warns and drops the features), so no QEMU 7.2 model reaches x86-64-v4;
//!   the host CPU does, natively (`Machine::levels` on the host's own architecture).

use super::{Family, Level, slots};
use crate::arch::Arch;

pub const V1: &str = "x86-64-v1";
pub const V2: &str = "x86-64-v2";
pub const V3: &str = "x86-64-v3";
pub const V4: &str = "x86-64-v4";

pub static FAMILY: Family = Family {
    arch: "amd64",
    checks: &[V2, V3, V4],
    levels: &[
        Level {
            name: V1,
            needs: 0,
            variant: None,
            qemu_cpu: Some("qemu64"),
        },
        Level {
            name: V2,
            needs: 0b001,
            variant: Some("v2"),
            qemu_cpu: Some("Nehalem"),
        },
        Level {
            name: V3,
            needs: 0b011,
            variant: Some("v3"),
            qemu_cpu: Some("Haswell"),
        },
        Level {
            name: V4,
            needs: 0b111,
            variant: Some("v4"),
            qemu_cpu: None,
        },
    ],
};

const CHECK_V2: &[u8] = &[
    0xf3, 0x0f, 0xb8, 0xc0, // popcnt     eax, eax
    0xf2, 0x0f, 0x38, 0xf0, 0xc0, // crc32      eax, al
    0x66, 0x0f, 0x38, 0x00, 0xc0, // pshufb     xmm0, xmm0
    0x66, 0x0f, 0x38, 0x39, 0xc0, // pminsd     xmm0, xmm0
    0x9f, // lahf
    0x48, 0x0f, 0xc7, 0x0c, 0x24, // cmpxchg16b [rsp]  ; rsp is 16-byte aligned
];

const CHECK_V3: &[u8] = &[
    0xc5, 0xfd, 0xfe, 0xc0, // vpaddd      ymm0, ymm0, ymm0
    0xc4, 0xe2, 0x7d, 0xb8, 0xc0, // vfmadd231ps ymm0, ymm0, ymm0
    0xc4, 0xe2, 0x7d, 0x13, 0xc0, // vcvtph2ps   ymm0, xmm0
    0xc4, 0xe2, 0x78, 0xf2, 0xc0, // andn        eax, eax, eax
    0xc4, 0xe2, 0x79, 0xf7, 0xc0, // shlx        eax, eax, eax
    0x0f, 0x38, 0xf0, 0x04, 0x24, // movbe       eax, [rsp]
];

const CHECK_V4: &[u8] = &[
    0x62, 0xf1, 0x7d, 0x48, 0xfe, 0xc0, // vpaddd   zmm0, zmm0, zmm0
    0x62, 0xf1, 0x7d, 0x48, 0xfd, 0xc0, // vpaddw   zmm0, zmm0, zmm0
    0x62, 0xf2, 0xfd, 0x48, 0x40, 0xc0, // vpmullq  zmm0, zmm0, zmm0
    0x62, 0xf2, 0x7d, 0x48, 0x44, 0xc0, // vplzcntd zmm0, zmm0
    0x62, 0xa1, 0x7d, 0x20, 0xfe, 0xc0, // vpaddd   ymm16, ymm16, ymm16
];

/// Ends every slot: back to `ran`, whose address r13 holds.
const BACK: &[u8] = &[
    0x41, 0xff, 0xe5, // jmp r13
];

/// The level probe's machine code, for `arch` when it is this family's, to be loaded at
/// `start`.
pub(super) fn code(arch: &Arch, _start: u64) -> Option<Vec<u8>> {
    if arch.name != "amd64" {
        return None;
    }
    let checks: [&[u8]; 3] = [CHECK_V2, CHECK_V3, CHECK_V4];
    let n = checks.len() as u8;
    // Syscalls (x86_64): prlimit64 302, rt_sigaction 13, exit_group 231; `syscall` keeps
    // every register but rax, rcx and r11. A signal handler is entered with rax, rdi, rsi,
    // rdx and rsp changed. x86_64 requires SA_RESTORER. ebx counts the checks, r12d holds the
    // mask, r13 the address of `ran`, r14 the stack pointer; [rsp] is the zeroed rlimit,
    // [rsp+16] the sigaction (handler, flags, restorer, mask).
    let parts: &[&[u8]] = &[
        &[0x48, 0x83, 0xec, 0x30],                               // 00: sub rsp, 48
        &[0x31, 0xc0],                                           // 04: xor eax, eax
        &[0x48, 0x89, 0x04, 0x24],                               // 06: mov [rsp], rax
        &[0x48, 0x89, 0x44, 0x24, 0x08],                         // 0a: mov [rsp+8], rax
        &[0xb8, 0x2e, 0x01, 0x00, 0x00],                         // 0f: mov eax, 302
        &[0x31, 0xff],                                           // 14: xor edi, edi  ; ourselves
        &[0xbe, 0x04, 0x00, 0x00, 0x00],                         // 16: mov esi, 4  ; RLIMIT_CORE
        &[0x48, 0x89, 0xe2],                                     // 1b: mov rdx, rsp
        &[0x45, 0x31, 0xd2],                                     // 1e: xor r10d, r10d
        &[0x0f, 0x05], // 21: syscall  ; prlimit64(0, CORE, {0, 0}, 0)
        &[0x48, 0x8d, 0x05, 0x6b, 0x00, 0x00, 0x00], // 23: lea rax, [rip + handler]
        &[0x48, 0x89, 0x44, 0x24, 0x10], // 2a: mov [rsp+16], rax  ; sa_handler
        &[0x48, 0x89, 0x44, 0x24, 0x20], // 2f: mov [rsp+32], rax  ; sa_restorer: never used, the handler does not return
        &[0x48, 0xc7, 0x44, 0x24, 0x18, 0x00, 0x00, 0x00, 0x44], // 34: mov qword ptr [rsp+24], 0x44000000  ; sa_flags: SA_NODEFER, SA_RESTORER
        &[0x48, 0xc7, 0x44, 0x24, 0x28, 0x00, 0x00, 0x00, 0x00], // 3d: mov qword ptr [rsp+40], 0  ; sa_mask
        &[0xbb, 0x04, 0x00, 0x00, 0x00],                         // 46: mov ebx, 4  ; SIGILL
        // 4b signals:
        &[0x89, 0xdf],                               // 4b: mov edi, ebx
        &[0x48, 0x8d, 0x74, 0x24, 0x10],             // 4d: lea rsi, [rsp+16]
        &[0x31, 0xd2],                               // 52: xor edx, edx
        &[0x41, 0xba, 0x08, 0x00, 0x00, 0x00],       // 54: mov r10d, 8
        &[0xb8, 0x0d, 0x00, 0x00, 0x00],             // 5a: mov eax, 13
        &[0x0f, 0x05],                               // 5f: syscall  ; rt_sigaction(sig, &act, 0, 8)
        &[0xff, 0xc3],                               // 61: inc ebx
        &[0x83, 0xfb, 0x0c],                         // 63: cmp ebx, 12
        &[0x75, 0xe3],                               // 66: jne signals (0x4b)  ; through SIGSEGV
        &[0x31, 0xdb],                               // 68: xor ebx, ebx
        &[0x45, 0x31, 0xe4],                         // 6a: xor r12d, r12d
        &[0x49, 0x89, 0xe6], // 6d: mov r14, rsp  ; the stack pointer the handler restores
        &[0x4c, 0x8d, 0x2d, 0x16, 0x00, 0x00, 0x00], // 70: lea r13, [rip + ran]
        // 77 loop:
        &[0x83, 0xfb, n],                            // 77: cmp ebx, n
        &[0x74, 0x1e],                               // 7a: je done (0x9a)
        &[0x89, 0xd8],                               // 7c: mov eax, ebx
        &[0xc1, 0xe0, 0x06],                         // 7e: shl eax, 6  ; i * SLOT
        &[0x48, 0x8d, 0x0d, 0x1e, 0x00, 0x00, 0x00], // 81: lea rcx, [rip + slots]
        &[0x48, 0x01, 0xc8],                         // 88: add rax, rcx
        &[0xff, 0xe0],                               // 8b: jmp rax
        // 8d ran:
        &[0x41, 0x0f, 0xab, 0xdc], // 8d: bts r12d, ebx
        // 91 next:
        &[0xff, 0xc3], // 91: inc ebx
        &[0xeb, 0xe2], // 93: jmp loop (0x77)
        // 95 handler:
        &[0x4c, 0x89, 0xf4], // 95: mov rsp, r14  ; drop the signal frame
        &[0xeb, 0xf7],       // 98: jmp next (0x91)
        // 9a done:
        &[0x41, 0x8d, 0x7c, 0x24, 0x64], // 9a: lea edi, [r12+100]
        &[0xb8, 0xe7, 0x00, 0x00, 0x00], // 9f: mov eax, 231
        &[0x0f, 0x05],                   // a4: syscall  ; exit_group(100 + mask)
                                         // a6 slots:
    ];
    let mut code = parts.concat();
    debug_assert_eq!(code.len(), 0xa6);
    code.extend(slots(&checks, &[0x90], BACK)); // filler: nop
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{arch, under_qemu};
    use super::*;

    #[test]
    fn level_probe_under_qemu_7_2() {
        let a = arch("amd64");
        let cases: &[(Option<&str>, &str)] = &[
            (Some("qemu64"), V1),
            (Some("Nehalem"), V2),
            (Some("Haswell"), V3),
            (Some("Skylake-Server"), V3),
            (Some("max"), V3),
            (None, V3),
        ];
        for (cpu, want) in cases {
            let (levels, _) = under_qemu(&a, *cpu);
            assert_eq!(levels.last(), Some(want), "-cpu {cpu:?}: {levels:?}");
        }
    }
}
