//! What fails at exec or after it, where the file itself says so: a file open for writing
//! (TEXT_BUSY), a setuid program under a handler without `C` (SETUID_NEEDS_CREDENTIAL),
//! libraries the loader will not find (LIBRARY_MISSING), and an instruction-set level the CPU
//! it meets lacks (ILLEGAL_INSTRUCTION). What only a run shows is settled in `settle`.

use std::path::Path;

use nix::errno::Errno;
use serde::Serialize;

use super::prose::{self, Illegal};
use super::{Cause, Diagnoser, Finding, Lookup, libs};
use crate::arch::Arch;
use crate::binfmt::Entry;
use crate::elf::ElfInfo;
use crate::machine::{Handle, Meta};
use crate::needs::{self, Needs};
use crate::probe::levels::{self, Family, Found};

/// What a CPU was proven to run by its family's level probe.
#[derive(Debug, Clone, Serialize)]
pub struct Available {
    /// `native`, or the binfmt_misc handler whose QEMU ran the probe.
    pub by: String,
    /// The highest level proven.
    pub level: Option<&'static str>,
    /// Every check that ran.
    pub checks: Vec<&'static str>,
    #[serde(skip)]
    pub mask: u32,
}

/// A `QEMU_CPU` value for ILLEGAL_INSTRUCTION's fix.
#[derive(Debug, Clone, Serialize)]
pub struct QemuCpu {
    pub value: String,
    /// A rerun with it ran the program to its end (`--run`); otherwise it comes from the
    /// level tables (what lifts QEMU 7.2 to the level needed).
    pub proven: bool,
}

/// `QEMU_CPU` values that add checks no level's own value gives, with the checks they were
/// measured to run (`probe::levels::riscv`: `rv64,v=true` runs rv64gc, zba, zbb, zbs, v).
const FEATURE_CPUS: &[(&str, &str, u32)] = &[("riscv64", "rv64,v=true", 0b10_1111)];

/// `QEMU_CPU` values of `family` that run more than `have`, fewest checks first; only those
/// covering `need` when it is known.
pub fn candidates(family: &Family, have: u32, need: Option<u32>) -> Vec<&'static str> {
    let mut out: Vec<(u32, &'static str)> = family
        .levels
        .iter()
        .filter_map(|l| Some((l.needs, l.qemu_cpu?)))
        .chain(
            FEATURE_CPUS
                .iter()
                .filter(|(a, _, _)| *a == family.arch)
                .map(|(_, v, m)| (*m, *v)),
        )
        .filter(|(mask, _)| mask & !have != 0)
        .filter(|(mask, _)| need.is_none_or(|n| n & mask == n))
        .collect();
    out.sort_by_key(|(mask, _)| mask.count_ones());
    out.dedup_by_key(|(_, v)| *v);
    out.into_iter().map(|(_, v)| v).collect()
}

impl Diagnoser<'_> {
    /// TEXT_BUSY: exec refuses a file some process holds open for writing.
    pub(super) fn text_busy(&self, path: &str, host: &Path) -> Option<Finding> {
        let writers = self.machine.writers(host);
        (!writers.is_empty()).then(|| {
            Finding::fails(
                Cause::TextBusy,
                Errno::ETXTBSY,
                prose::text_busy(path, &writers),
            )
        })
    }

    /// SETUID_NEEDS_CREDENTIAL: a setuid or setgid program that `entry` runs without `C`,
    /// for a caller who is not already who the bits would make it.
    pub(super) fn setuid_without_c(
        &self,
        what: &str,
        meta: &Meta,
        entry: &Entry,
    ) -> Option<Finding> {
        if entry.has_flag('C') {
            return None;
        }
        let me = self.machine.credentials();
        let suid = meta.mode & 0o4000 != 0 && meta.uid != me.euid;
        let sgid = meta.mode & 0o2000 != 0 && meta.gid != me.egid && !me.groups.contains(&meta.gid);
        let bits = match (suid, sgid) {
            (true, true) => "setuid and setgid",
            (true, false) => "setuid",
            (false, true) => "setgid",
            (false, false) => return None,
        };
        Some(Finding::starts(
            Cause::SetuidNeedsCredential,
            prose::setuid_without_credential(what, bits, meta.uid, &entry.name),
        ))
    }

    /// LIBRARY_MISSING: the loader is there, the DT_NEEDED libraries are not.
    pub(super) fn libraries(
        &self,
        what: &str,
        on_host: &Path,
        path: &str,
        arch: Option<&Arch>,
    ) -> Option<Finding> {
        let missing = libs::missing(&self.root, on_host, path);
        if missing.is_empty() {
            return None;
        }
        let foreign =
            arch.filter(|a| self.inspector.host().arch.as_deref() != Some(a.name.as_str()));
        let debian = foreign.and_then(|a| a.debian.as_deref());
        let mut f = Finding::starts(
            Cause::LibraryMissing,
            prose::library_missing(what, &missing, debian, self.place()),
        );
        f.libs = missing;
        Some(f)
    }

    /// What the program needs (its own records, and its loader's inside the root), and
    /// whether the CPU it meets runs that: ILLEGAL_INSTRUCTION when not. `handler`: the
    /// binfmt_misc entry whose QEMU runs it; None for this host's own CPU.
    pub(super) fn needs_check(
        &self,
        what: &str,
        (file, len, info): (&Handle, u64, &ElfInfo),
        arch: &Arch,
        handler: Option<&Entry>,
    ) -> Option<Finding> {
        let own = needs::of_program(file, len, info, &arch.name);
        let loader = info
            .interpreter
            .as_deref()
            .and_then(|l| match self.root.resolve(l) {
                Lookup::Found(host) => {
                    crate::inspect::loader_needs(self.machine, &host, &arch.name)
                }
                _ => None,
            });
        let needs = match (own, loader) {
            (Some(n), Some(e)) => n.with(e),
            (Some(n), None) => n,
            (None, Some(e)) => Needs::from_evidence(needs::family(&arch.name)?, vec![e])?,
            (None, None) => return None,
        };
        if needs.mask == 0 {
            // The baseline: every CPU of the architecture has it.
            let mut ok = Finding::ok("");
            ok.needs = Some(needs);
            return Some(ok);
        }
        let available = self.available(arch, handler);
        let lacks = available
            .as_ref()
            .map(|a| needs.missing(&found(needs.family, a.mask)))
            .unwrap_or_default();
        let mut f = if lacks.is_empty() {
            let mut ok = Finding::ok("");
            if available.is_none() {
                ok = ok.note(format!(
                    "it needs {} ({}); whether the CPU it meets has that could not be proven",
                    needs.describe(),
                    needs.sources()
                ));
            }
            ok
        } else {
            let have = available.as_ref().map_or(0, |a| a.mask);
            let cpu = handler.and_then(|_| {
                candidates(needs.family, have, Some(needs.mask))
                    .first()
                    .copied()
            });
            let mut f = Finding::starts(
                Cause::IllegalInstruction,
                prose::illegal_instruction(Illegal {
                    what,
                    needs: Some((needs.describe(), needs.sources())),
                    has: available.as_ref().and_then(|a| a.level),
                    lacks,
                    handler: handler.map(|h| h.name.as_str()),
                    qemu_cpu: cpu.map(|c| (c, false)),
                }),
            );
            f.qemu_cpu = cpu.map(|c| QemuCpu {
                value: c.to_string(),
                proven: false,
            });
            f
        };
        f.needs = Some(needs);
        f.available = available;
        Some(f)
    }

    /// The level probe of `arch`, run where the program would run (natively, or through the
    /// handler this process's exec reaches).
    pub(super) fn available(&self, arch: &Arch, handler: Option<&Entry>) -> Option<Available> {
        let family = levels::family(arch)?;
        match self.machine.levels(arch) {
            Ok(Some(mask)) => {
                let f = found(family, mask);
                Some(Available {
                    by: handler.map_or("native".to_string(), |h| h.name.clone()),
                    level: f.highest().map(|l| l.name),
                    checks: f.checks(),
                    mask,
                })
            }
            Ok(None) => None,
            Err(e) => {
                tracing::info!("cannot prove the levels of {}: {e}", arch.name);
                None
            }
        }
    }
}

fn found(family: &'static Family, mask: u32) -> Found {
    Found { mask, family }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::levels::{power, riscv, x86};

    #[test]
    fn candidates_lift_the_cpu_past_what_it_has() {
        // POWER9 by default; nothing known of the program: try POWER10.
        assert_eq!(candidates(&power::FAMILY, 0b011, None), ["power10"]);
        // QEMU's default riscv64 (rv64gc + zba/zbb/zbs), a program needing v.
        assert_eq!(
            candidates(&riscv::FAMILY, 0b1111, Some(0b10_0001)),
            ["rv64,v=true"]
        );
        // x86-64-v4 has no QEMU 7.2 model: nothing to offer.
        assert!(candidates(&x86::FAMILY, 0b011, Some(0b111)).is_empty());
    }
}
