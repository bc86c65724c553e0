//! Which registrations a request stands for: one per architecture, with its interpreter found
//! and checked, or a reason it is skipped. `install` applies them to the kernel; `export`
//! writes them as files for systemd-binfmt or Debian's update-binfmts, so both give the same
//! entries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::apply::Skipped;
use super::kernel_buffer;
use super::rule::Registration;
use crate::arch::{Arch, Host, rule_matches};
use crate::emulator::{self, Emulator};

/// How handlers are to be registered.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--interpreter ARCH=PATH`, by canonical arch name.
    pub interpreters: HashMap<String, PathBuf>,
    /// Directories searched for `qemu-<cpu>-static`, then `qemu-<cpu>`.
    pub search: Vec<PathBuf>,
    /// `F`: open the interpreter now and use it everywhere (needs a static one).
    pub fix_binary: bool,
    /// `OC`: setuid programs run with their own credentials.
    pub credential: bool,
    /// `P`: pass the program's own argv[0] (the interpreter must read it from the aux vector).
    pub preserve_argv0: bool,
    /// The request was `all`: an arch without an interpreter is skipped, not an error.
    pub all: bool,
}

/// A registration ready to be made, with the interpreter it was checked against.
#[derive(Debug, Clone)]
pub struct Planned<'t> {
    pub arch: &'t Arch,
    pub reg: Registration,
    pub emulator: Emulator,
}

/// The registrations for `arches`, and the arches skipped with their reasons. An error is bad
/// input (a missing or unfit interpreter the user asked for by name): nothing may be written.
pub fn plan<'t>(
    arches: &[&'t Arch],
    opts: &Options,
    host: &Host,
    runs_natively: impl Fn(&Arch) -> bool,
) -> Result<(Vec<Planned<'t>>, Vec<Skipped>), String> {
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    for &arch in arches {
        let skip = |reason: String| Skipped {
            arch: arch.name.clone(),
            reason,
        };
        let Some(cpu) = arch.qemu.as_deref() else {
            skipped.push(skip(format!(
                "QEMU has no user-mode emulator for {}",
                arch.name
            )));
            continue;
        };
        if host.arch.as_deref() == Some(arch.name.as_str()) {
            skipped.push(skip(
                "the host's own architecture: a handler would send every native program through QEMU".into(),
            ));
            continue;
        }
        if runs_natively(arch) {
            skipped.push(skip(format!(
                "this kernel runs {} programs itself (a probe ran in a private binfmt_misc)",
                arch.name
            )));
            continue;
        }
        let path = match opts.interpreters.get(&arch.name) {
            Some(p) => p.clone(),
            None => match emulator::find(arch, &opts.search) {
                Some(p) => p,
                None if opts.all => {
                    skipped.push(skip(format!("no interpreter qemu-{cpu}-static found")));
                    continue;
                }
                None => {
                    return Err(format!(
                        "no interpreter for {}: looked for qemu-{cpu}-static and qemu-{cpu} in {} (apt-get install qemu-user-static, or --interpreter {}=PATH)",
                        arch.name,
                        opts.search
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        arch.name,
                    ));
                }
            },
        };
        let next = plan_one(arch, &path, opts)?;
        // Two of our own rules that can match one file: the newer would silently win. A table
        // that says so is wrong, not a choice to make quietly.
        if let Some(other) = planned.iter().find(|p: &&Planned<'_>| {
            next.reg
                .overlaps_rule(p.reg.offset, &p.reg.magic, &p.reg.mask)
        }) {
            return Err(format!(
                "the rules for {} and {} overlap: some file would match both (fix the architecture table)",
                other.arch.name, arch.name
            ));
        }
        planned.push(next);
    }
    Ok((planned, skipped))
}

/// The registration for one arch with the interpreter at `path`, every check made.
fn plan_one<'t>(arch: &'t Arch, path: &Path, opts: &Options) -> Result<Planned<'t>, String> {
    let emu = emulator::check(path, opts.fix_binary).map_err(|e| format!("{}: {e}", arch.name))?;
    let mut flags = String::new();
    if opts.preserve_argv0 {
        flags.push('P');
    }
    if opts.credential {
        if !emu.root_owned {
            return Err(format!(
                "{}: --credential needs a root-owned interpreter; {} is not (C runs setuid programs with their privileges through it)",
                arch.name,
                path.display()
            ));
        }
        flags.push_str("OC");
    }
    if opts.fix_binary {
        flags.push('F');
    }
    let reg = Registration {
        name: arch.entry_name().unwrap_or_default(),
        offset: 0,
        magic: arch.magic.clone(),
        mask: arch.mask.clone(),
        interpreter: path.display().to_string(),
        flags,
    };
    reg.validate().map_err(|e| format!("{}: {e}", arch.name))?;
    // The rule must not take its own interpreter: every exec would loop (ELOOP).
    if rule_matches(&reg.magic, &reg.mask, reg.offset, &kernel_buffer(&emu.head)) {
        return Err(format!(
            "the rule for {} would match its own interpreter {}; exec would loop (ELOOP)",
            arch.name,
            path.display()
        ));
    }
    Ok(Planned {
        arch,
        reg,
        emulator: emu,
    })
}
