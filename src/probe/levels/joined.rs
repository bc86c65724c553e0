//! The echo probe and the level probe as one program, so that `test` pays one emulator start
//! per architecture for both answers. The echo probe's code runs first, exactly as it runs
//! alone (it writes the token and argv[0]); where it would call exit, a jump takes it to the
//! level probe's code, placed after it at the next [`SLOT`] boundary (so the level code keeps
//! the alignment it has alone), which ends with `exit_group(100 + mask)`.
//!
//! What changes against the two programs apart: the exit status carries the level mask instead
//! of `40 + argc`. The token and argv[0] on stdout still show that the program read its own
//! initial stack, and a status in the family's range shows the level code ran to its end.

use super::{LevelProbe, SLOT, code, family};
use crate::arch::Arch;
use crate::probe::{code_address, image, isa};

/// The joined program for `arch`; `None` when `arch` has no level probe (or its echo probe
/// is not entered at its first byte, as ppc64's ELFv1 descriptor is).
pub fn echo_then_levels(arch: &Arch) -> Option<LevelProbe> {
    let family = family(arch)?;
    let echo = isa::code(arch)?;
    if echo.entry != 0 || echo.e_flags.is_some() {
        return None;
    }
    let mut bytes = echo.bytes;
    let at = bytes.len().next_multiple_of(SLOT);
    link(arch, &mut bytes, at)?;
    // The gap is never executed.
    bytes.resize(at, 0);
    bytes.extend(code(arch, code_address(arch) + at as u64)?);
    Some(LevelProbe {
        image: image(arch, &bytes, 0, arch.flags),
        family,
    })
}

/// Turn the echo code's exit call into a jump to offset `to`. The exit call is the code's
/// last system call instruction in every family.
fn link(arch: &Arch, code: &mut [u8], to: usize) -> Option<()> {
    match arch.name.as_str() {
        "amd64" => {
            // `syscall` (0f 05) becomes `jmp rel8` (eb rel), also two bytes.
            let at = last(code, &[0x0f, 0x05], 1)?;
            let rel = i8::try_from(to.checked_sub(at + 2)?).ok()?;
            code[at..at + 2].copy_from_slice(&[0xeb, rel as u8]);
            Some(())
        }
        // `svc #0` becomes `b` (ARM mode: the offset counts from the instruction + 8, in words).
        "arm" => le_word(code, 0xef00_0000, |at| {
            let words = u32::try_from((to.checked_sub(at + 8)?) / 4).ok()?;
            (words < 1 << 24).then_some(0xea00_0000 | words)
        }),
        // `svc #0` becomes `b` (imm26, in words).
        "arm64" => le_word(code, 0xd400_0001, |at| {
            let words = u32::try_from((to.checked_sub(at)?) / 4).ok()?;
            (words < 1 << 25).then_some(0x1400_0000 | words)
        }),
        // `sc` becomes `b` (LI, a byte offset with its low two bits clear).
        "ppc64le" => le_word(code, 0x4400_0002, |at| {
            let bytes = u32::try_from(to.checked_sub(at)?).ok()?;
            (bytes < 1 << 25).then_some(0x4800_0000 | bytes)
        }),
        // `ecall` becomes `jal x0, offset` (J-type; the offset's bits are scattered).
        "riscv64" => le_word(code, 0x0000_0073, |at| {
            let off = u32::try_from(to.checked_sub(at)?).ok()?;
            (off < 1 << 20).then_some(
                ((off >> 20) & 1) << 31
                    | ((off >> 1) & 0x3ff) << 21
                    | ((off >> 11) & 1) << 20
                    | ((off >> 12) & 0xff) << 12
                    | 0x6f,
            )
        }),
        "s390x" => {
            // `aghi %r2, 40; svc 1` (4 + 2 bytes) becomes `j` (brc 15, offset in halfwords
            // from its own address) and `nopr`.
            let svc = last(code, &[0x0a, 0x01], 2)?;
            let at = svc.checked_sub(4)?;
            if code[at..at + 2] != [0xa7, 0x2b] {
                return None;
            }
            let halves = u16::try_from(to.checked_sub(at)? / 2).ok()?;
            let [hi, lo] = halves.to_be_bytes();
            code[at..svc + 2].copy_from_slice(&[0xa7, 0xf4, hi, lo, 0x07, 0x00]);
            Some(())
        }
        _ => None,
    }
}

/// The last offset, a multiple of `align`, where `code` holds `pattern`.
fn last(code: &[u8], pattern: &[u8], align: usize) -> Option<usize> {
    (0..=code.len().checked_sub(pattern.len())?)
        .rev()
        .filter(|i| i % align == 0)
        .find(|&i| code[i..].starts_with(pattern))
}

/// Replace the last little-endian instruction word equal to `call` with `jump(its offset)`.
fn le_word(code: &mut [u8], call: u32, jump: impl FnOnce(usize) -> Option<u32>) -> Option<()> {
    let at = last(code, &call.to_le_bytes(), 4)?;
    code[at..at + 4].copy_from_slice(&jump(at)?.to_le_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::super::FAMILIES;
    use super::super::testing::{arch, exit_under_qemu};
    use super::*;
    use crate::probe::{expected_output, run_under_qemu};

    /// Under QEMU 7.2, with the default CPU and with a model that reaches higher, each joined
    /// program prints what the echo probe prints and exits as the level probe exits.
    #[test]
    fn joined_probe_echoes_then_reports_the_level_probe_s_levels() {
        let want = expected_output("tok-2718", "argv0-of-joined");
        for f in FAMILIES {
            let a = arch(f.arch);
            let joined = echo_then_levels(&a).expect("joined program");
            assert!(
                a.matches(&joined.image),
                "{}: matched by its own rule",
                f.arch
            );
            let top = f.levels.iter().rev().find_map(|l| l.qemu_cpu);
            for cpu in [None, top] {
                let mut args = Vec::new();
                if let Some(cpu) = cpu {
                    args.extend(["-cpu", cpu]);
                }
                args.extend(["-0", "argv0-of-joined", "PROBE", "tok-2718"]);
                let (code, stdout) = run_under_qemu(&a, &joined.image, &args);
                assert_eq!(stdout, want, "{} -cpu {cpu:?}: stdout", f.arch);
                let alone = exit_under_qemu(&a, cpu);
                assert_eq!(code, alone, "{} -cpu {cpu:?}: exit status", f.arch);
                assert!(
                    code.and_then(|c| f.decode(c)).is_some(),
                    "{} -cpu {cpu:?}: {code:?} is a level status",
                    f.arch
                );
            }
        }
    }

    #[test]
    fn archs_without_levels_have_no_joined_program() {
        assert!(echo_then_levels(&arch("mips")).is_none());
        assert!(echo_then_levels(&arch("ppc64")).is_none());
    }
}
