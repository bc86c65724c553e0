//! The CPU models a QEMU user-mode emulator offers, read from what `QEMU_CPU=help` (or
//! `-cpu help`) prints. Every target prints its own format; these are the ones Debian's
//! qemu-user-static 7.2 prints (measured, each to stdout, exit status 1):
//!
//! - `Available CPUs:`, then one name a line indented by two spaces: aarch64, alpha, arm,
//!   cris, or1k, xtensa.
//! - `Available CPUs:`, then `x86 NAME  description`, a blank line and `Recognized CPUID
//!   flags:` with the feature names: i386, x86_64 (186 lines).
//! - `PowerPC NAME  PVR 004e1200` or `PowerPC NAME  (alias for OTHER)`: ppc, ppc64, ppc64le.
//! - `s390 NAME  description`, a blank line, `Recognized feature flags:`: s390x.
//! - `MIPS 'NAME'`: every MIPS target.
//! - `Sparc NAME IU … FPU … MMU … NWINS n`, where NAME has spaces (`TI UltraSparc II`), then
//!   `Default CPU feature flags …` lines: the SPARC targets.
//! - One bare name a line: riscv32, riscv64, m68k, sh4, loongarch64.
//! - Nothing at all: hexagon, hppa, microblaze, nios2 (no list to give).

/// The model names in `-cpu help` output, in the order listed, each once.
pub fn parse(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            // The list ends at its first blank line (feature flags follow).
            if names.is_empty() {
                continue;
            }
            break;
        }
        if trimmed == "Available CPUs:" {
            continue;
        }
        if is_trailer(trimmed) {
            break;
        }
        if let Some(name) = model_of(line) {
            if !names.iter().any(|n| n == &name) {
                names.push(name);
            }
        }
    }
    names
}

/// A line that starts what follows the list: feature flags.
fn is_trailer(line: &str) -> bool {
    [
        "Recognized ",
        "Default CPU feature",
        "Available CPU feature",
        "Numerical features",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

/// The model a line of the list names, if it names one.
fn model_of(line: &str) -> Option<String> {
    let trimmed = line.trim();
    if let Some(rest) = trimmed.strip_prefix("Sparc ") {
        let end = rest.find(" IU ")?;
        let name = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
        return (!name.is_empty()).then_some(name);
    }
    if let Some(rest) = trimmed.strip_prefix("MIPS '") {
        let end = rest.find('\'')?;
        return (end > 0).then(|| rest[..end].to_string());
    }
    for prefix in ["x86 ", "PowerPC ", "s390 "] {
        if let Some(rest) = trimmed.strip_prefix(prefix) {
            return rest.split_whitespace().next().map(str::to_string);
        }
    }
    // Indented names, or a bare name alone on its line.
    let mut words = trimmed.split_whitespace();
    let first = words.next()?;
    (line.starts_with(' ') || words.next().is_none()).then(|| first.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_qemu_7_2_prints() {
        let indented = "Available CPUs:\n  a64fx\n  cortex-a35\n  max\n  neoverse-n1\n";
        assert_eq!(
            parse(indented),
            ["a64fx", "cortex-a35", "max", "neoverse-n1"]
        );
        let x86 = "Available CPUs:\nx86 486                   (alias configured by machine type)\n\
                   x86 Broadwell-v1          Intel Core Processor (Broadwell)\n\
                   x86 max                   Enables all features supported by the accelerator in the current host\n\
                   \nRecognized CPUID flags:\n  3dnow 3dnowext abm\n  avx avx2\n";
        assert_eq!(parse(x86), ["486", "Broadwell-v1", "max"]);
        let ppc = "PowerPC power9_v2.0      PVR 004e1200\nPowerPC power9           (alias for power9_v2.0)\n\
                   PowerPC power10          (alias for power10_v2.0)\n";
        assert_eq!(parse(ppc), ["power9_v2.0", "power9", "power10"]);
        let s390 = "s390 qemu            QEMU Virtual CPU version 2.5+       (migration-safe)\n\
                    s390 z900-base       IBM zSeries 900 GA1                 (static, migration-safe)\n\
                    \nRecognized feature flags:\nesan3                Instructions marked as n3\n";
        assert_eq!(parse(s390), ["qemu", "z900-base"]);
        let mips = "MIPS '4Kc'\nMIPS '24Kf'\nMIPS 'mips32r6-generic'\n";
        assert_eq!(parse(mips), ["4Kc", "24Kf", "mips32r6-generic"]);
        let sparc = "Sparc  Fujitsu MB86904 IU 04000000 FPU 00080000 MMU 04000000 NWINS 8 \n\
                     Sparc TI MicroSparc II IU 42000000 FPU 00080000 MMU 02000000 NWINS 8 \n\
                     Default CPU feature flags (use '-' to remove): float swap mul div\n\
                     Available CPU feature flags (use '+' to add): float128 vis1\n";
        assert_eq!(parse(sparc), ["Fujitsu MB86904", "TI MicroSparc II"]);
        assert_eq!(
            parse("any\nrv64\nsifive-u54\n"),
            ["any", "rv64", "sifive-u54"]
        );
        assert_eq!(parse("la464-loongarch-cpu\n"), ["la464-loongarch-cpu"]);
        assert!(parse("").is_empty());
    }

    #[test]
    fn what_is_not_a_list_gives_nothing() {
        // Bare names are a list to this reader, so a probe's own output (printed by an
        // interpreter that is not QEMU and ran the probe instead) would read as two models:
        // `ask` takes the list only from an interpreter that answered as QEMU, exit 1.
        assert_eq!(parse("token-amd64-1\nbinfmt-setup-probe\n").len(), 2);
        assert!(parse("\n\n").is_empty());
        assert!(parse("Sparc no iu marker\nMIPS '\n").is_empty());
    }

    /// Debian's QEMU 7.2, asked directly: every target that has a list gives one, with the
    /// models `levels` names among them.
    #[test]
    fn the_lists_of_debians_qemu_7_2() {
        use crate::sys::exec::{self, Spec};
        let ask = |cpu: &str| {
            let qemu = format!("/usr/bin/qemu-{cpu}-static");
            let out = exec::run(
                &Spec::new(&qemu)
                    .argv([qemu.as_str(), "-cpu", "help"])
                    .env(exec::Env::Exactly(Vec::new())),
                Some(std::time::Duration::from_secs(30)),
            )
            .unwrap_or_else(|e| panic!("{qemu}: {e}"));
            parse(&String::from_utf8_lossy(&out.stdout))
        };
        let cases: [(&str, &[&str]); 9] = [
            ("x86_64", &["qemu64", "Nehalem", "Haswell", "max"]),
            ("aarch64", &["cortex-a57", "cortex-a76", "max"]),
            ("arm", &["arm926", "arm1136", "cortex-a15", "max", "any"]),
            ("ppc64le", &["power8", "power9", "power10"]),
            ("s390x", &["qemu", "max", "z13", "gen16a"]),
            ("riscv64", &["any", "rv64", "sifive-u54"]),
            ("mips", &["24Kf", "P5600"]),
            ("sparc64", &["TI UltraSparc II"]),
            ("m68k", &["m68040", "any"]),
        ];
        for (cpu, want) in cases {
            let models = ask(cpu);
            for w in want {
                assert!(
                    models.iter().any(|m| m == w),
                    "{cpu}: {w} not in {models:?}"
                );
            }
            assert!(
                !models
                    .iter()
                    .any(|m| m.contains(':') || m.starts_with("Recognized")),
                "{cpu}: {models:?}"
            );
        }
        assert!(ask("hexagon").is_empty());
    }
}
