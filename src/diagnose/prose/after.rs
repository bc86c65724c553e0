//! Words for what fails at and after exec: ILLEGAL_INSTRUCTION, LIBRARY_MISSING, TEXT_BUSY,
//! SHEBANG_LOOP, SHEBANG_TOO_LONG and SETUID_NEEDS_CREDENTIAL.

use super::{Place, Words};
use crate::machine::Writer;

/// The CPU a program meets: "this host's CPU" or "QEMU behind qemu-aarch64".
pub(in crate::diagnose) fn cpu_words(handler: Option<&str>) -> String {
    match handler {
        Some(h) => format!("the CPU QEMU emulates for binfmt_misc handler {h}"),
        None => "this host's CPU".to_string(),
    }
}

pub(in crate::diagnose) struct Illegal<'a> {
    pub what: &'a str,
    /// `x86-64-v4 (gnu_property …)`, or None when only the run showed it.
    pub needs: Option<(String, String)>,
    /// The highest level the CPU proved, and the checks it lacks.
    pub has: Option<&'a str>,
    pub lacks: Vec<&'static str>,
    pub handler: Option<&'a str>,
    /// A `QEMU_CPU` value, and whether a rerun proved it.
    pub qemu_cpu: Option<(&'a str, bool)>,
}

pub(in crate::diagnose) fn illegal_instruction(i: Illegal<'_>) -> Words {
    let cpu = cpu_words(i.handler);
    let has = i.has.map_or("no level of its family".to_string(), |l| {
        format!("up to {l}")
    });
    let lacks = if i.lacks.is_empty() {
        String::new()
    } else {
        format!(", lacking {}", i.lacks.join(", "))
    };
    let message = match &i.needs {
        Some((level, from)) => format!(
            "{}; it needs {level} (from {from}), and {cpu} runs {has}{lacks}",
            i.what
        ),
        None => format!(
            "{}; it died of SIGILL: it executed an instruction {cpu} does not have (it runs {has})",
            i.what
        ),
    };
    let lower = "or rebuild it for a lower baseline (-march, GOAMD64=v1, GORISCV64=rva20u64, …)";
    let fix = match (i.qemu_cpu, i.handler) {
        (Some((v, true)), _) => format!(
            "give QEMU a CPU that has it: QEMU_CPU={v} in the program's environment (docker run -e QEMU_CPU={v}; proven by running it again with it), a newer QEMU whose default CPU has it, {lower}"
        ),
        (Some((v, false)), _) => format!(
            "give QEMU a CPU that has it: QEMU_CPU={v} in the program's environment (docker run -e QEMU_CPU={v}; QEMU 7.2 reaches that level with it, by the level probes; diagnose --run proves it on this program), a newer QEMU, {lower}"
        ),
        (None, Some(_)) => format!(
            "no QEMU_CPU value of this QEMU was found to run it: use a newer QEMU, run it on a CPU that has the level, {lower}"
        ),
        (None, None) => format!("run it on a CPU that has the level, {lower}"),
    };
    Words::new(message)
        .fix(fix)
        .error("Illegal instruction (SIGILL); under QEMU: qemu: uncaught target signal 4 (Illegal instruction)")
}

/// The Debian package that usually provides a library, by its soname.
pub(in crate::diagnose) fn package_of(lib: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("libc.so.6", "libc6"),
        ("libm.so.6", "libc6"),
        ("libpthread.so.0", "libc6"),
        ("libdl.so.2", "libc6"),
        ("librt.so.1", "libc6"),
        ("libresolv.so.2", "libc6"),
        ("libutil.so.1", "libc6"),
        ("libstdc++.so.6", "libstdc++6"),
        ("libgcc_s.so.1", "libgcc-s1"),
        ("libatomic.so.1", "libatomic1"),
        ("libgomp.so.1", "libgomp1"),
        ("libz.so.1", "zlib1g"),
        ("libssl.so.3", "libssl3"),
        ("libcrypto.so.3", "libssl3"),
        ("libffi.so.8", "libffi8"),
        ("libcrypt.so.1", "libcrypt1"),
        ("libzstd.so.1", "libzstd1"),
        ("liblzma.so.5", "liblzma5"),
        ("libbz2.so.1.0", "libbz2-1.0"),
        ("libexpat.so.1", "libexpat1"),
        ("libuuid.so.1", "libuuid1"),
        ("libselinux.so.1", "libselinux1"),
        ("libpcre2-8.so.0", "libpcre2-8-0"),
        ("libglib-2.0.so.0", "libglib2.0-0"),
        ("libcurl.so.4", "libcurl4"),
        ("libsqlite3.so.0", "libsqlite3-0"),
        ("libtinfo.so.6", "libtinfo6"),
        ("libncursesw.so.6", "libncursesw6"),
        ("libreadline.so.8", "libreadline8"),
    ];
    TABLE.iter().find(|(l, _)| *l == lib).map(|(_, p)| *p)
}

pub(in crate::diagnose) fn library_missing(
    what: &str,
    missing: &[String],
    debian_arch: Option<&str>,
    place: Place,
) -> Words {
    let first = missing.first().map(String::as_str).unwrap_or("a library");
    let suffix = debian_arch.map(|a| format!(":{a}")).unwrap_or_default();
    let packages: Vec<String> = missing
        .iter()
        .map(|l| match package_of(l) {
            Some(p) => format!("{l} (Debian: {p}{suffix})"),
            None => format!("{l} (apt-file search {l} names its package)"),
        })
        .collect();
    Words::new(format!(
        "{what}; its loader starts, but the libraries it needs are not {}: {}; the loader looks in DT_RPATH/DT_RUNPATH, LD_LIBRARY_PATH, the directories of /etc/ld.so.conf and the default ones",
        place.where_(),
        missing.join(", ")
    ))
    .fix(format!(
        "install {}{}, or link it statically",
        packages.join(", "),
        place.inside()
    ))
    .error(format!(
        "error while loading shared libraries: {first}: cannot open shared object file: No such file or directory (exit 127)"
    ))
}

pub(in crate::diagnose) fn text_busy(path: &str, writers: &[Writer]) -> Words {
    let who: Vec<String> = writers
        .iter()
        .map(|w| format!("{} (pid {})", w.command, w.pid))
        .collect();
    let (by, stop) = match writers.first() {
        Some(w) => (who.join(", "), format!("kill {}", w.pid)),
        None => (
            "a process this one may not inspect (another user's, or outside this user namespace; fuser -v or lsof as root name it)".to_string(),
            "stop it".to_string(),
        ),
    };
    Words::new(format!(
        "{path} is open for writing by {by}; the kernel will not execute a file while it may change"
    ))
    .fix(format!(
        "let the writer finish and close it (a copy or download still in progress), or {stop}; write a new file and rename it over the old one to replace a program that runs"
    ))
}

pub(in crate::diagnose) fn shebang_loop(path: &str, chain: &[String], cycle: bool) -> Words {
    let shown = chain.join(" -> ");
    let message = if cycle {
        format!(
            "the '#!' interpreters of {path} lead back to a script already on the way ({shown}); the kernel gives up after 5 rewrites"
        )
    } else {
        format!(
            "the '#!' interpreters of {path} chain more than 5 deep ({shown}); the kernel gives up after 5 rewrites"
        )
    };
    Words::new(message).fix(format!(
        "point the '#!' line of {path} at a real program (e.g. #!/bin/sh), not at a script"
    ))
}

pub(in crate::diagnose) fn shebang_too_long(path: &str, interp_start: &str) -> Words {
    Words::new(format!(
        "the '#!' line of {path} does not end its interpreter path within the first 256 bytes the kernel reads (BINPRM_BUF_SIZE), so the kernel refuses it rather than run a truncated path ({interp_start}…)"
    ))
    .fix(format!(
        "use a shorter interpreter path in {path} (a symlink, or #!/usr/bin/env NAME)"
    ))
    .error("Exec format error (ENOEXEC; a shell then runs the file itself as a shell script)")
}

pub(in crate::diagnose) fn setuid_without_credential(
    what: &str,
    bits: &str,
    owner: u32,
    entry: &str,
) -> Words {
    Words::new(format!(
        "{what}; it is {bits} (owner uid {owner}), but binfmt_misc handler {entry} has no C flag, so the kernel runs QEMU with your own credentials and the program runs without its privilege"
    ))
    .fix(format!(
        "run it as the user it is {bits} to (root in a build: RUN as root, or sudo inside the container); adding C (binfmt-setup install --credential) makes it work but lets any local user make a root QEMU write files and run code of their choosing (QEMU_LOG_FILENAME, QEMU_LD_PREFIX, QEMU_GDB; measured, see SECURITY.md), so only on a host where every user may be root"
    ))
    .error("it starts, then fails where it needs the privilege (sudo: \"effective uid is not 0\")")
}
