//! Instruction-set level probes: one tiny static ELF per CPU family that finds, in a single
//! start (so one emulator start under QEMU), which instruction-set levels the CPU it runs on
//! executes, real or emulated.
//!
//! Every family's program follows one plan, in one process. It sets RLIMIT_CORE to 0 (a
//! signal it does not catch must leave no core file: QEMU writes the guest's core into the
//! working directory, the kernel the host's) and installs one handler for signals 4 to 11
//! (SIGILL, SIGTRAP, SIGBUS, SIGFPE and SIGSEGV among them: what a missing instruction
//! raises), with SA_NODEFER, so that the handler can be entered again without a sigreturn.
//! Then, for each check `i`, it jumps to slot `i`, which executes that check's instructions
//! and jumps back to `ran`, which sets bit `i` of a mask. Where the CPU lacks an instruction,
//! the signal's handler runs instead: it resets the stack pointer, dropping the signal frame
//! (it never returns into the faulting code), and goes on with the next check, so a missing
//! instruction costs only its own bit. Finally the program exits with [`EXIT_BASE`] + mask.
//! The loop's state lives in registers that neither the checks nor signal delivery change. A
//! QEMU or kernel that ignored SA_NODEFER would kill the program at its second missing
//! instruction: no status in the family's range, so no level is claimed.
//!
//! Each check once ran in a forked child instead; a fork of an emulated process costs about
//! a millisecond of CPU under QEMU, and the six families have 23 checks.
//!
//! Exit status encoding: `100 + mask`, bit `i` set when check `i` of the family
//! ([`Family::checks`], lowest bit first) ran. A family has at most seven checks, so the status
//! stays within 100..=227; anything else (a signal, a status below 100) means the probe itself
//! did not run its course. A family's baseline that the program's own instructions already
//! prove (amd64 v1, arm64 v8.0) has no check: a run that reports at all proves it.
//!
//! Each slot is [`SLOT`] bytes: the check's instructions, filler, then the family's jump back
//! to `ran` (through a register that holds its address) at the end, so every slot ends alike
//! and the dispatch is `slots + i * SLOT`.
//!
//! Levels are cumulative: a level is proven when every check it needs ran
//! ([`Level::needs`]), and the levels are listed lowest first, each needing the ones below.
//! Checks that are not levels by themselves (arm64 `sve`, riscv64 `zba`) stay visible through
//! [`Found::checks`].

pub mod aarch64;
pub mod arm;
mod joined;
pub mod power;
pub mod proof;
pub mod riscv;
pub mod s390x;
pub mod x86;

pub use joined::echo_then_levels;

use crate::arch::Arch;

/// What a level probe adds its mask to for its exit status.
pub const EXIT_BASE: i32 = 100;

/// Bytes per check slot; a power of two, since the dispatch shifts the index.
pub const SLOT: usize = 64;

/// Checks one family can have: the mask must keep the status below 256.
const MAX_CHECKS: usize = 7;

/// One instruction-set level of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// The level's usual name (`x86-64-v3`, `power9`, `rva22u64`, ...).
    pub name: &'static str,
    /// Bits of the checks that must all have run; 0 for a baseline the program itself proves.
    pub needs: u32,
    /// The OCI platform variant containerd and BuildKit write for it (`v3` in
    /// `linux/amd64/v3`); `None` where the level has no variant of its own (see [`platform`]).
    pub variant: Option<&'static str>,
    /// A `QEMU_CPU` value (model, or `model,feature=on`) that lifts QEMU 7.2 user mode to
    /// this level, as measured by the family's tests; `None` where no QEMU 7.2 model reaches
    /// it.
    pub qemu_cpu: Option<&'static str>,
}

/// The levels and checks of one CPU family.
#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    /// The arch table's canonical name (`amd64`, `arm`, ...).
    pub arch: &'static str,
    /// Check names by bit, lowest bit first.
    pub checks: &'static [&'static str],
    /// Levels, lowest first.
    pub levels: &'static [Level],
}

impl Family {
    /// What an exit status says, or `None` when it is not one this family's probe gives.
    pub fn decode(&'static self, exit_code: i32) -> Option<Found> {
        let mask = u32::try_from(exit_code.checked_sub(EXIT_BASE)?).ok()?;
        (mask >> self.checks.len() == 0).then_some(Found { mask, family: self })
    }

    /// The level called `name`.
    pub fn level(&self, name: &str) -> Option<&'static Level> {
        self.levels.iter().find(|l| l.name == name)
    }
}

/// What one run of a level probe proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Bit `i`: check `i` ran.
    pub mask: u32,
    pub family: &'static Family,
}

impl Found {
    /// The levels proven, lowest first; they stop at the first level not proven.
    pub fn levels(&self) -> Vec<&'static str> {
        self.family
            .levels
            .iter()
            .take_while(|l| l.needs & self.mask == l.needs)
            .map(|l| l.name)
            .collect()
    }

    /// The highest level proven, if any.
    pub fn highest(&self) -> Option<&'static Level> {
        self.family
            .levels
            .iter()
            .take_while(|l| l.needs & self.mask == l.needs)
            .last()
    }

    /// The names of the checks that ran, lowest bit first.
    pub fn checks(&self) -> Vec<&'static str> {
        self.family
            .checks
            .iter()
            .enumerate()
            .filter(|(i, _)| self.mask & (1 << i) != 0)
            .map(|(_, c)| *c)
            .collect()
    }
}

/// A level probe: the ELF and how to read its exit status.
#[derive(Debug, Clone)]
pub struct LevelProbe {
    pub image: Vec<u8>,
    /// Reads the exit status: [`Family::decode`].
    pub family: &'static Family,
}

impl LevelProbe {
    pub fn decode(&self, exit_code: i32) -> Option<Found> {
        self.family.decode(exit_code)
    }
}

/// Every family with a level probe.
pub static FAMILIES: [&Family; 6] = [
    &x86::FAMILY,
    &arm::FAMILY,
    &aarch64::FAMILY,
    &power::FAMILY,
    &s390x::FAMILY,
    &riscv::FAMILY,
];

/// The family of levels for `arch`, if it has one.
pub fn family(arch: &Arch) -> Option<&'static Family> {
    FAMILIES.iter().copied().find(|f| f.arch == arch.name)
}

/// The level probe's machine code for `arch`, to be loaded at `start`; `None` when it has
/// none.
fn code(arch: &Arch, start: u64) -> Option<Vec<u8>> {
    match arch.name.as_str() {
        "amd64" => x86::code(arch, start),
        "arm" => arm::code(arch, start),
        "arm64" => aarch64::code(arch, start),
        "ppc64le" => power::code(arch, start),
        "s390x" => s390x::code(arch, start),
        "riscv64" => riscv::code(arch, start),
        _ => None,
    }
}

/// The level probe for `arch`, or `None` when it has none.
pub fn program(arch: &Arch) -> Option<LevelProbe> {
    let code = code(arch, super::code_address(arch))?;
    Some(LevelProbe {
        image: wrap(arch, &code),
        family: family(arch)?,
    })
}

/// The level names an exit status of `arch`'s probe proves, lowest first; `None` when the
/// status is not one the probe gives (it did not run its course) or `arch` has no probe.
pub fn decode(arch: &Arch, exit_code: i32) -> Option<Vec<&'static str>> {
    Some(family(arch)?.decode(exit_code)?.levels())
}

/// The platform string an image built for `level` of `arch` declares, as containerd and
/// BuildKit write it. containerd's platforms package (its documentation:
/// https://pkg.go.dev/github.com/containerd/platforms; `normalizeArch` in database.go and
/// `platformVector` in compare.go) knows variants for amd64 (`v2`..`v4`, `v1` normalized
/// away), arm (`v5`..`v8`) and arm64 (`v8.1`..`v8.9`, `v9`..; `v8` and `v8.0` normalized
/// away), and none for ppc64le, s390x or riscv64, whose images carry the bare platform.
pub fn platform(arch: &Arch, level: &str) -> Option<String> {
    let level = family(arch)?.level(level)?;
    Some(match level.variant {
        Some(v) => format!("{}/{}", arch.platform, v),
        None => arch.platform.clone(),
    })
}

/// The `QEMU_CPU` value that lifts QEMU 7.2 to `level` of `arch`, where one does.
pub fn qemu_cpu(arch: &Arch, level: &str) -> Option<&'static str> {
    family(arch)?.level(level)?.qemu_cpu
}

/// The slots of a program: each check's bytes, then `filler` up to `back`, which ends the
/// slot. Panics (a build defect) when a check does not fit or the filler does not tile.
fn slots(checks: &[&[u8]], filler: &[u8], back: &[u8]) -> Vec<u8> {
    assert!(checks.len() <= MAX_CHECKS, "too many checks");
    let mut out = Vec::with_capacity(checks.len() * SLOT);
    for c in checks {
        let gap = SLOT
            .checked_sub(c.len() + back.len())
            .expect("check fits its slot");
        assert_eq!(gap % filler.len(), 0, "filler tiles the gap");
        out.extend_from_slice(c);
        for _ in 0..gap / filler.len() {
            out.extend_from_slice(filler);
        }
        out.extend_from_slice(back);
    }
    out
}

/// 32-bit instruction words, little-endian (every family here but s390x).
fn le_words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Wrap code in the probes' one-segment ELF, entered at its first byte.
fn wrap(arch: &Arch, code: &[u8]) -> Vec<u8> {
    super::image(arch, code, 0, arch.flags)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::arch::ArchTable;

    pub(crate) fn arch(name: &str) -> Arch {
        ArchTable::embedded()
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("{name} in the table"))
            .clone()
    }

    /// The exit status of `arch`'s level probe under QEMU 7.2, with `-cpu cpu` (`QEMU_CPU`)
    /// or the default model for `None`.
    pub(crate) fn exit_under_qemu(arch: &Arch, cpu: Option<&str>) -> Option<i32> {
        let probe = program(arch).expect("level probe");
        let mut args = Vec::new();
        if let Some(cpu) = cpu {
            args.extend(["-cpu", cpu]);
        }
        args.push("PROBE");
        crate::probe::run_under_qemu(arch, &probe.image, &args).0
    }

    /// The levels and checks `arch`'s level probe proves under QEMU 7.2 (see
    /// [`exit_under_qemu`]); panics when the probe did not run its course.
    pub(crate) fn under_qemu(
        arch: &Arch,
        cpu: Option<&str>,
    ) -> (Vec<&'static str>, Vec<&'static str>) {
        let code = exit_under_qemu(arch, cpu)
            .unwrap_or_else(|| panic!("{} -cpu {cpu:?}: no exit status", arch.name));
        let found = family(arch)
            .expect("family")
            .decode(code)
            .unwrap_or_else(|| panic!("{} -cpu {cpu:?}: exit status {code}", arch.name));
        (found.levels(), found.checks())
    }

    /// Each family's own invariants: few enough checks, levels cumulative, names unique.
    pub(crate) fn family_is_well_formed(f: &'static Family) {
        assert!(f.checks.len() <= MAX_CHECKS, "{}: too many checks", f.arch);
        let all = (1u32 << f.checks.len()) - 1;
        let mut below = 0;
        for l in f.levels {
            assert_eq!(
                l.needs & below,
                below,
                "{}: {} needs the levels below",
                f.arch,
                l.name
            );
            assert_eq!(
                l.needs & !all,
                0,
                "{}: {} needs a check that does not exist",
                f.arch,
                l.name
            );
            below = l.needs;
        }
        let a = arch(f.arch);
        assert_eq!(family(&a), Some(f));
        let p = program(&a).expect("probe");
        assert!(
            a.matches(&p.image),
            "{} probe matched by its own rule",
            f.arch
        );
        assert!(
            p.image.len() < 1024,
            "{} probe is {} bytes",
            f.arch,
            p.image.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::testing::arch;
    use super::*;

    #[test]
    fn every_family_is_well_formed() {
        for f in FAMILIES {
            testing::family_is_well_formed(f);
        }
    }

    /// Every `QEMU_CPU` value the tables give lifts QEMU 7.2 to (at least) its level.
    #[test]
    fn every_qemu_cpu_value_reaches_its_level() {
        for f in FAMILIES {
            let a = arch(f.arch);
            for l in f.levels {
                if let Some(cpu) = l.qemu_cpu {
                    let (levels, _) = testing::under_qemu(&a, Some(cpu));
                    assert!(levels.contains(&l.name), "{} {cpu}: {levels:?}", f.arch);
                }
            }
        }
    }

    #[test]
    fn exit_status_encoding() {
        let a = arch("amd64");
        assert_eq!(decode(&a, 100), Some(vec!["x86-64-v1"]));
        assert_eq!(
            decode(&a, 100 + 0b011),
            Some(vec!["x86-64-v1", "x86-64-v2", "x86-64-v3"])
        );
        // A higher check without the ones below proves nothing above the gap.
        assert_eq!(decode(&a, 100 + 0b100), Some(vec!["x86-64-v1"]));
        assert_eq!(decode(&a, 100 + 0b1000), None, "only three checks");
        assert_eq!(decode(&a, 99), None);
        assert_eq!(decode(&a, 42), None);
        let s = arch("s390x");
        assert_eq!(decode(&s, 100), Some(vec![]), "z13 needs its vector check");
        assert_eq!(decode(&arch("mips"), 100), None);
    }

    #[test]
    fn platform_variants_follow_containerd() {
        let cases = [
            ("amd64", "x86-64-v1", "linux/amd64"),
            ("amd64", "x86-64-v2", "linux/amd64/v2"),
            ("amd64", "x86-64-v4", "linux/amd64/v4"),
            ("arm", "v5", "linux/arm/v5"),
            ("arm", "v7", "linux/arm/v7"),
            ("arm64", "v8.0", "linux/arm64"),
            ("arm64", "v8.1", "linux/arm64/v8.1"),
            ("arm64", "v9.0", "linux/arm64/v9"),
            ("ppc64le", "power10", "linux/ppc64le"),
            ("s390x", "z15", "linux/s390x"),
            ("riscv64", "rva22u64", "linux/riscv64"),
        ];
        for (a, level, want) in cases {
            assert_eq!(
                platform(&arch(a), level).as_deref(),
                Some(want),
                "{a} {level}"
            );
        }
        assert_eq!(platform(&arch("amd64"), "v9"), None);
    }

    /// The amd64 probe run natively proves what /proc/cpuinfo's flags promise. This project's
    /// machines (development and CI) have AVX-512, so there it reports x86-64-v4.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn native_run_matches_cpuinfo() {
        let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
        let flags: Vec<&str> = info
            .lines()
            .find(|l| l.starts_with("flags"))
            .expect("flags line")
            .split_whitespace()
            .collect();
        let has = |want: &[&str]| want.iter().all(|f| flags.contains(f));
        let mut want = vec![x86::V1];
        if has(&["popcnt", "sse4_2", "ssse3", "sse4_1", "lahf_lm", "cx16"]) {
            want.push(x86::V2);
            if has(&["avx2", "fma", "f16c", "bmi1", "bmi2", "movbe"]) {
                want.push(x86::V3);
                if has(&["avx512f", "avx512bw", "avx512dq", "avx512cd", "avx512vl"]) {
                    want.push(x86::V4);
                }
            }
        }
        use crate::machine::{Live, Machine};
        let mask = Live::new()
            .levels(&arch("amd64"))
            .expect("native run")
            .expect("amd64 has a level probe");
        let found = x86::FAMILY.decode(EXIT_BASE + mask as i32).expect("a mask");
        assert_eq!(found.levels(), want);
    }
}
