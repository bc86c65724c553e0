//! The words for ELF programs: what they are, why the kernel does not run them, and their
//! loaders and libraries.

use std::path::Path;

use super::{Place, Words, article, go_hint, interp_name, os_display};
use crate::arch::Arch;
use crate::binfmt::Entry;
use crate::elf::ElfInfo;

/// "an arm64 program (linux/arm64, static)".
pub(in crate::diagnose) fn program_words(
    info: &ElfInfo,
    arch: Option<&str>,
    platform: Option<&str>,
) -> String {
    let arch = arch.unwrap_or("unknown-architecture");
    let linking = match &info.interpreter {
        Some(l) => format!("loader {l}"),
        None if info.is_static() => "static".to_string(),
        None => "no loader".to_string(),
    };
    let platform = platform.map(|p| format!("{p}, ")).unwrap_or_default();
    format!("{} {arch} program ({platform}{linking})", article(arch))
}

/// "a zip file": what a file of a format is, when it is no ELF we can name.
pub(in crate::diagnose) fn file_words(format: &str) -> String {
    format!("{} {format} file", article(format))
}

/// The file runs: `what` it is, and `how`.
pub(in crate::diagnose) fn runs(what: &str, how: &str) -> String {
    format!("{what}; {how}")
}

pub(in crate::diagnose) fn runs_natively(host: &str) -> String {
    format!("this host is {host} and runs it natively")
}

pub(in crate::diagnose) fn runs_compat(host: &str, arch: &str) -> String {
    format!("this {host} kernel runs {arch} programs itself")
}

/// `why`: the inspector's words for it (a relocatable object, a core dump, …).
pub(in crate::diagnose) fn not_a_program(path: &str, why: &str, e_type: u16) -> Words {
    let fix = match e_type {
        1 => "link the object into a program",
        _ => "run the program this file came from, not this file",
    };
    Words::new(format!("{path}: {why}")).fix(fix)
}

pub(in crate::diagnose) fn unknown_machine(machine: u16, host: &str, target: &str) -> Words {
    Words::new(format!(
        "a program for e_machine {machine:#x}, an architecture binfmt-setup knows no emulator for; this host is {host}"
    ))
    .fix(format!("rebuild it for {target}"))
}

/// `arch`: the architecture the identity bytes name, when they do.
pub(in crate::diagnose) fn damaged_what(arch: Option<&str>) -> String {
    match arch {
        Some(a) => format!("{} {a} ELF file", article(a)),
        None => "an ELF file".to_string(),
    }
}

pub(in crate::diagnose) fn truncated(what: &str, why: &str, path: &str, len: u64) -> Words {
    Words::new(format!("{what} cut short: {why}")).fix(format!(
        "the file is damaged ({len} bytes): copy, download or build {path} again"
    ))
}

pub(in crate::diagnose) fn malformed(what: &str, why: &str, path: &str) -> Words {
    Words::new(format!("{what} with damaged headers: {why}"))
        .fix(format!("rebuild or copy {path} again"))
}

/// A damaged file a handler takes anyway: exec starts, and its interpreter fails.
pub(in crate::diagnose) fn damaged_through_handler(damage: Words, entry: &Entry) -> Words {
    Words {
        message: format!(
            "{}; binfmt_misc handler {} takes it, and its interpreter cannot load it",
            damage.message, entry.name
        ),
        fix: damage.fix,
        error: Some(format!(
            "{}: the program cannot be loaded",
            interp_name(entry)
        )),
    }
}

fn build_for_linux(target: &str) -> String {
    format!("build it for Linux (Go: GOOS=linux GOARCH={target})")
}

/// Linux's ELF loader does not look at EI_OSABI: a program for this CPU starts, then its
/// system calls mean other things here.
pub(in crate::diagnose) fn foreign_os_starts(
    os: &str,
    arch: &str,
    os_abi: &str,
    target: &str,
) -> Words {
    let os = os_display(os);
    Words::new(format!(
        "a {os} program for {arch} (OS ABI {os_abi}); Linux loads it, since the CPU matches, but its {os} system calls mean other things to Linux"
    ))
    .fix(build_for_linux(target))
    .error("it starts, then crashes or misbehaves (often: Illegal instruction, or Bad system call)")
}

pub(in crate::diagnose) fn foreign_os(os: &str, arch: &str, host: &str, target: &str) -> Words {
    Words::new(format!(
        "a {} program for {arch}; Linux cannot run it, and this host is {host}",
        os_display(os)
    ))
    .fix(build_for_linux(target))
}

/// QEMU starts a program of another OS, but emulates Linux system calls only.
pub(in crate::diagnose) fn foreign_os_emulated(os: &str, arch: Option<&str>, by: &str) -> Words {
    Words::new(format!(
        "a {} program for {}; {by}, but QEMU emulates Linux system calls only",
        os_display(os),
        arch.unwrap_or("an unknown CPU")
    ))
    .fix(build_for_linux(arch.unwrap_or("…")))
    .error("it starts, then crashes or misbehaves")
}

/// Whether the probe found the kernel lacking an ABI (`Ok`), or could not ask (`Err`).
pub(in crate::diagnose) fn host_abi_unsupported(
    what: &str,
    host: &str,
    name: &str,
    probe: Result<(), String>,
) -> Words {
    let evidence = match probe {
        Ok(()) => format!(
            "a tiny {name} program, run in a private binfmt_misc instance, was refused by this kernel"
        ),
        Err(e) => format!(
            "binfmt-setup could not ask the kernel ({e}), so it assumes the support is missing"
        ),
    };
    let kernel = if name == "x32" {
        " (CONFIG_X86_X32_ABI=y, and not booted with syscall.x32=n)"
    } else {
        ""
    };
    Words::new(format!(
        "{what}; this {host} CPU could run it, but this kernel was built without {name} support ({evidence}), and QEMU cannot emulate {name}"
    ))
    .fix(format!(
        "rebuild it for {host}{}, or boot a kernel with {name} support{kernel}",
        go_hint(host)
    ))
}

pub(in crate::diagnose) fn no_emulator(what: &str, host: &str, name: &str, target: &str) -> Words {
    Words::new(format!(
        "{what}; this host is {host}, and QEMU has no user-mode emulator for {name}"
    ))
    .fix(format!("rebuild it for {target}"))
}

/// Why the kernel does not run an `arch` program itself: a second ABI it lacks (`compat`),
/// or another CPU.
pub(in crate::diagnose) fn lacks(host: &str, name: &str, compat: bool) -> String {
    if compat {
        format!("this {host} kernel does not run {name} programs itself")
    } else {
        format!("this host is {host}")
    }
}

pub(in crate::diagnose) fn install(arch: &str) -> String {
    format!("binfmt-setup install --arch {arch}")
}

/// ", or rebuild it for arm64 (Go: GOARCH=arm64)", when programs should be built for
/// `target` rather than `arch`.
pub(in crate::diagnose) fn rebuild_hint(target: Option<&str>, arch: &str) -> String {
    match target {
        Some(t) if t != arch => format!(", or rebuild it for {t}{}", go_hint(t)),
        _ => String::new(),
    }
}

/// The facts behind every "needs a handler" cause: what the program is, why the kernel
/// does not run it, its arch, and where binfmt_misc is.
#[derive(Debug, Clone, Copy)]
pub(in crate::diagnose) struct Foreign<'a> {
    pub what: &'a str,
    pub lacks: &'a str,
    pub arch: &'a str,
    pub dir: &'a Path,
    /// ", or rebuild it for …", or nothing.
    pub rebuild: &'a str,
}

pub(in crate::diagnose) fn binfmt_not_mounted(f: Foreign) -> Words {
    Words::new(format!(
        "{}; {} and needs a binfmt_misc handler for {}, but binfmt_misc is not mounted at {}, so no handler can exist",
        f.what,
        f.lacks,
        f.arch,
        f.dir.display()
    ))
    .fix(format!(
        "{} (mounts binfmt_misc first){}",
        install(f.arch),
        f.rebuild
    ))
}

pub(in crate::diagnose) fn binfmt_disabled(f: Foreign) -> Words {
    Words::new(format!(
        "{}; {}, and binfmt_misc at {} is disabled as a whole (status: disabled), so no handler is used",
        f.what,
        f.lacks,
        f.dir.display()
    ))
    .fix(format!("echo 1 > {}/status", f.dir.display()))
}

/// `names`: every entry whose rule matches; `first`: the one to enable.
pub(in crate::diagnose) fn handler_disabled(f: Foreign, names: &[&str], first: &str) -> Words {
    Words::new(format!(
        "{}; {}, and its binfmt_misc handler {} is disabled",
        f.what,
        f.lacks,
        names.join(", ")
    ))
    .fix(format!("echo 1 > {}/{first}", f.dir.display()))
}

pub(in crate::diagnose) fn no_handler(f: Foreign) -> Words {
    Words::new(format!(
        "{}; {} and has no binfmt_misc handler for {}",
        f.what, f.lacks, f.arch
    ))
    .fix(format!("{}{}", install(f.arch), f.rebuild))
}

pub(in crate::diagnose) fn rule_misses(entry: &str, arch: &str) -> String {
    format!("entry {entry} is meant for {arch} but its rule does not match this file")
}

// ---- Loaders and libraries (elf.rs) ----

pub(in crate::diagnose) fn libraries_missing(
    what: &str,
    loader: &str,
    path: &str,
    missing: &[String],
    place: Place,
) -> Words {
    let first = missing.first().map(String::as_str).unwrap_or_default();
    Words::new(format!(
        "{what}; its loader {loader} is {}, the libraries it must load are not: {}",
        place.where_(),
        missing.join(", ")
    ))
    .error(format!(
        "{path}: error while loading shared libraries: {first}: cannot open shared object file: No such file or directory"
    ))
}

/// The facts behind LOADER_MISSING.
#[derive(Debug, Clone, Copy)]
pub(in crate::diagnose) struct LoaderMissing<'a> {
    pub what: &'a str,
    pub loader: &'a str,
    pub arch: Option<&'a Arch>,
    /// The architecture the root's own programs are for, when it differs from the
    /// program's and a root was given.
    pub root_arch: Option<&'a str>,
    /// The emulator that opens the loader itself (QEMU), or None: the kernel does.
    pub emulator: Option<&'a str>,
    pub place: Place<'a>,
}

pub(in crate::diagnose) fn loader_missing(l: LoaderMissing) -> Words {
    let consequence = match l.emulator {
        None => "so exec reports \"No such file or directory\" although the program exists",
        Some(_) => "so the emulator starts but cannot load the program",
    };
    let (what, loader) = (l.what, l.loader);
    let mut message = format!(
        "{what}; its loader {loader} is not {}, {consequence}",
        l.place.where_()
    );
    let mut fix = loader_fix(loader, l.arch);
    if let (Some(t), Some(a)) = (l.root_arch, l.arch) {
        message.push_str(&format!(
            "; the root looks like an {t} system, and this program is for {}",
            a.name
        ));
        fix = format!("rebuild it for {t}{}, or {fix}", go_hint(t));
    }
    let words = Words::new(message).fix(fix);
    match l.emulator {
        None => words,
        Some(emu) => words.error(format!(
            "{emu}: Could not open '{loader}': No such file or directory"
        )),
    }
}

/// Which package provides a loader: glibc's ld-linux*/ld64.so, musl's ld-musl-*.
pub(in crate::diagnose) fn loader_fix(loader: &str, arch: Option<&Arch>) -> String {
    let file = Path::new(loader)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let static_hint = "or link it statically (Go: CGO_ENABLED=0)";
    if file.starts_with("ld-musl") {
        return format!("install musl in the root (Alpine: apk add musl), {static_hint}");
    }
    if file.starts_with("ld-linux") || file.starts_with("ld64.so") || file.starts_with("ld.so") {
        let pkg = match arch.and_then(|a| a.debian.as_deref()) {
            Some(deb) => format!("libc6:{deb}"),
            None => "libc6".to_string(),
        };
        return format!(
            "install the C library that provides {loader} (Debian: apt-get install {pkg}; inside an image of that architecture: apt-get install libc6), {static_hint}"
        );
    }
    format!("install the package that provides {loader}, {static_hint}")
}
