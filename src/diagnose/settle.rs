//! After `--run`: whether the real outcome bears the prediction out, the cause the run
//! itself shows when it does not (SIGILL: ILLEGAL_INSTRUCTION; the loader's "error while
//! loading shared libraries": LIBRARY_MISSING), and, for ILLEGAL_INSTRUCTION under QEMU, the
//! `QEMU_CPU` value that runs the program, proven by running it again with each candidate.

use super::after::{self, QemuCpu};
use super::prose::{self, Illegal};
use super::{Cause, Diagnosis, RunError, RunOutcome};
use crate::arch::ArchTable;
use crate::machine::Machine;
use crate::probe::levels::{self, Found};

/// Reruns at most this many `QEMU_CPU` values.
const MAX_RERUNS: usize = 4;

/// Runs the program again with one more environment variable.
pub type Rerun<'a> = &'a dyn Fn(&str, &str) -> Result<RunOutcome, RunError>;

/// Settle `d` against the run `ran`: returns whether the prediction agreed, and revises the
/// cause when the run showed another one (keeping the prediction in `predicted`).
pub fn settle(
    d: &mut Diagnosis,
    ran: &RunOutcome,
    machine: &dyn Machine,
    table: &ArchTable,
    rerun: Rerun<'_>,
) -> Result<bool, RunError> {
    let agrees = d.agrees(ran);
    if !agrees && ran.errno == Some(nix::errno::Errno::ETXTBSY) {
        // The writer is a process this one may not look at (another user's, or outside
        // this user namespace).
        revise(d, Cause::TextBusy);
        let words = prose::text_busy(&d.path, &[]);
        d.errno = ran.errno;
        d.message = words.message;
        d.fix = words.fix;
        d.error = Some("Text file busy (ETXTBSY)".into());
    }
    if !agrees && d.errno.is_none() && ran.errno.is_none() {
        if died_of_sigill(ran) && d.cause != Cause::IllegalInstruction {
            revise(d, Cause::IllegalInstruction);
        } else if let Some(lib) = missing_library(ran).filter(|_| d.cause != Cause::LibraryMissing)
        {
            revise(d, Cause::LibraryMissing);
            let words =
                prose::library_missing(&d.message, &[lib], None, prose::Place { root: None });
            d.message = words.message;
            d.fix = words.fix;
            d.error = words.error;
        }
    }
    if d.cause == Cause::IllegalInstruction && died_of_sigill(ran) {
        prove_qemu_cpu(d, machine, table, rerun)?;
    }
    Ok(agrees)
}

/// SIGILL: the kernel's, or QEMU's own death by the guest's signal (it re-raises it).
fn died_of_sigill(ran: &RunOutcome) -> bool {
    ran.signal.as_deref() == Some("SIGILL")
        || (ran.exit == Some(132) && ran.stderr.contains("uncaught target signal 4"))
}

/// The first library glibc's loader says it cannot open.
fn missing_library(ran: &RunOutcome) -> Option<String> {
    if !ran.loader_failed() {
        return None;
    }
    let after = ran
        .stderr
        .split("error while loading shared libraries: ")
        .nth(1)?;
    let lib = after.split(':').next()?.trim();
    (!lib.is_empty()).then(|| lib.to_string())
}

fn revise(d: &mut Diagnosis, cause: Cause) {
    d.predicted = Some(d.cause);
    d.cause = cause;
    d.ok = false;
}

/// Find the emulated CPU's levels, then rerun the program with each `QEMU_CPU` value that
/// gives more, until one runs it to its end.
fn prove_qemu_cpu(
    d: &mut Diagnosis,
    machine: &dyn Machine,
    table: &ArchTable,
    rerun: Rerun<'_>,
) -> Result<(), RunError> {
    let Some(arch) = d.arch.as_deref().and_then(|a| table.find(a)) else {
        return Ok(());
    };
    let Some(family) = levels::family(arch) else {
        return Ok(());
    };
    let have = match &d.available {
        Some(a) => a.mask,
        None => match machine.levels(arch) {
            Ok(Some(mask)) => {
                let f = Found { mask, family };
                d.available = Some(after::Available {
                    by: d.handler.clone().unwrap_or_else(|| "native".into()),
                    level: f.highest().map(|l| l.name),
                    checks: f.checks(),
                    mask,
                });
                mask
            }
            _ => 0,
        },
    };
    let mut proven = None;
    if d.handler.is_some() {
        let need = d.needs.as_ref().map(|n| n.mask);
        for value in after::candidates(family, have, need)
            .into_iter()
            .take(MAX_RERUNS)
        {
            let again = rerun("QEMU_CPU", value)?;
            let ran_through =
                again.errno.is_none() && again.signal.is_none() && !died_of_sigill(&again);
            d.notes
                .push(format!("rerun with QEMU_CPU={value}: {}", again.describe()));
            if ran_through {
                proven = Some(value);
                break;
            }
        }
    }
    let lacks = match (&d.needs, &d.available) {
        (Some(n), Some(a)) => n.missing(&Found {
            mask: a.mask,
            family,
        }),
        _ => Vec::new(),
    };
    let words = prose::illegal_instruction(Illegal {
        what: d.what.as_deref().unwrap_or("the program"),
        needs: d.needs.as_ref().map(|n| (n.describe(), n.sources())),
        has: d.available.as_ref().and_then(|a| a.level),
        lacks,
        handler: d.handler.as_deref(),
        qemu_cpu: proven.map(|v| (v, true)),
    });
    d.message = words.message;
    d.fix = words.fix;
    d.error = words.error;
    d.qemu_cpu = proven.map(|v| QemuCpu {
        value: v.to_string(),
        proven: true,
    });
    Ok(())
}
