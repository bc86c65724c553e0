//! `scan`: find the programs in a root filesystem, a tar stream or an OCI image whose
//! platform is not the image's own (an amd64 `/server` in an arm64 image fails only at
//! `docker run`).
//!
//! Three sources feed one tally: a directory walk (`walk`), a tar file, plain, gzip or zstd
//! (`tar`, read once whether it is a root filesystem or a `docker save` archive), and an OCI
//! image (`oci`, a layout or the image of such an archive), whose layers (`layers`) are
//! stacked with their whiteouts before anything is judged. Both tar readers stream members
//! through `archive`. Only the ELF header is read (and, for 32-bit ARM, the attributes
//! section that names the variant).
//!
//! Where an image lives is a `source::Source`: a path, a registry (`registry`), the Docker
//! daemon (`daemon`), or a stream on standard input (`stream`); each ends in one of the
//! readers above.

pub mod archive;
mod arm;
pub mod daemon;
pub mod layers;
mod needing;
pub mod oci;
pub mod preflight;
pub mod registry;
pub mod source;
pub mod stream;
pub mod tar;
mod verdict;
pub mod walk;

pub use verdict::{ExpectedFrom, Mismatch, Problem, Tally, Verdict};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::arch::ArchTable;
use crate::elf::{self, ElfError, ReadAt};

/// Bytes of a file read to identify it: the 64-bit ELF header.
pub const HEAD: usize = 64;

/// A scan that could not be done; every one names its input, and says whose fault it is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScanError(pub String, pub crate::error::Class);

impl crate::error::Classify for ScanError {
    fn class(&self) -> crate::error::Class {
        self.1
    }
}

impl ScanError {
    /// An input that is missing or malformed (exit 2): a path, a tag, a digest, a document.
    pub fn new(message: impl Into<String>) -> ScanError {
        ScanError(message.into(), crate::error::Class::BadInput)
    }

    /// The environment refused (exit 3): a registry or daemon that cannot be reached, a TLS
    /// handshake or a login it turned down.
    pub fn environment(message: impl Into<String>) -> ScanError {
        ScanError(message.into(), crate::error::Class::Environment)
    }
}

/// Counters a caller may read while a scan runs, to show progress.
#[derive(Debug, Default)]
pub struct Progress {
    pub files: AtomicU64,
    pub elf_files: AtomicU64,
    /// Bytes read from a registry or a stream so far, and how many are due (0: unknown).
    pub bytes: AtomicU64,
    pub bytes_total: AtomicU64,
    /// Layers read whole so far, and how many are due (0: not an image from afar).
    pub layers: AtomicU64,
    pub layers_total: AtomicU64,
}

impl Progress {
    fn file(&self, elf: bool) {
        self.files.fetch_add(1, Ordering::Relaxed);
        if elf {
            self.elf_files.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The platform files are expected to have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub os: String,
    /// Canonical architecture name (`arm64`, `arm`).
    pub arch: String,
    /// `v7` etc. for architectures with variants (arm); `None` for the others.
    pub variant: Option<String>,
    /// The `linux/arm` part, from the table.
    base: String,
}

impl Expected {
    /// From a name a user writes: `arm64`, `linux/arm/v6`, `armhf`, `aarch64`.
    pub fn parse(table: &ArchTable, name: &str) -> Result<Expected, crate::arch::ArchError> {
        let arch = table.lookup(name)?;
        let variant = if arch.variants.is_empty() {
            None
        } else {
            Some(
                arch.variant_named(name)
                    .unwrap_or_else(|| arch.variants[0].clone()),
            )
        };
        Ok(Expected {
            os: "linux".into(),
            arch: arch.name.clone(),
            variant,
            base: arch.platform.clone(),
        })
    }

    /// From an image config's `os`, `architecture` and `variant` (or an index's platform).
    pub fn from_image(
        table: &ArchTable,
        os: &str,
        architecture: &str,
        variant: Option<&str>,
    ) -> Option<Expected> {
        let arch = table.find(architecture)?;
        let variant = if arch.variants.is_empty() {
            None
        } else {
            // OCI: linux/arm without a variant means v7.
            Some(
                variant
                    .filter(|v| arch.variants.iter().any(|k| k == v))
                    .map(str::to_string)
                    .unwrap_or_else(|| arch.variants[0].clone()),
            )
        };
        Some(Expected {
            os: os.to_ascii_lowercase(),
            arch: arch.name.clone(),
            variant,
            base: arch.platform.clone(),
        })
    }

    /// `linux/arm64`, `linux/arm/v7`.
    pub fn platform(&self) -> String {
        let base = match self.base.strip_prefix("linux/") {
            Some(rest) => format!("{}/{rest}", self.os),
            None => self.base.clone(),
        };
        match &self.variant {
            Some(v) => format!("{base}/{v}"),
            None => base,
        }
    }

    /// Whether a program of `id` runs on this platform. ARM runs older variants: an arm/v7
    /// image may hold a v5 program, an arm/v6 one may not hold a v7 program.
    pub fn fits(&self, id: &ElfId) -> bool {
        if id.os != self.os || id.arch.as_deref() != Some(self.arch.as_str()) {
            return false;
        }
        match (&self.variant, &id.variant) {
            (Some(want), Some(got)) => variant_number(got) <= variant_number(want),
            _ => true,
        }
    }
}

fn variant_number(v: &str) -> u32 {
    v.trim_start_matches('v').parse().unwrap_or(u32::MAX)
}

/// The platform of one ELF file, as scan judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfId {
    /// `linux/arm64`, `linux/arm/v5`, `freebsd/amd64`, or `unknown/e_machine-0x1234`.
    pub platform: String,
    pub os: String,
    pub arch: Option<String>,
    pub variant: Option<String>,
    /// `exec`, `pie`, `dyn`, `rel`, `core`…
    pub kind: String,
    /// Programs and shared libraries are judged; relocatable objects and core dumps are
    /// counted but never loaded, so never a mismatch.
    pub judged: bool,
    /// The instruction-set level it needs beyond its family's baseline, where an image's
    /// member was read for it (`needing`); the preflight compares it with this host.
    pub needs: Option<Box<crate::needs::Needs>>,
    /// Its mode bits where a tar header gave them (0 otherwise): set-id programs are listed
    /// by the preflight.
    pub mode: u32,
}

/// What the first bytes of a regular file say.
#[derive(Debug, Clone)]
pub enum Sniff {
    NotElf,
    Elf(ElfId),
    /// An ELF whose header cannot be read.
    Broken(String),
}

/// Identify a file from its first bytes; `src` gives the rest when ARM attributes are needed.
pub fn identify(table: &ArchTable, head: &[u8], src: &dyn ReadAt, len: u64) -> Sniff {
    if !head.starts_with(b"\x7fELF") {
        return Sniff::NotElf;
    }
    let info = match elf::read_identity(src, head, len) {
        Ok(info) => info,
        Err(ElfError::Io(e)) => return Sniff::Broken(format!("read failed: {e}")),
        Err(e) => return Sniff::Broken(e.to_string()),
    };
    let naming = elf::name(&info, table);
    let os = if info.is_linux() { "linux" } else { info.os() };
    let platform = naming
        .platform
        .unwrap_or_else(|| format!("{os}/e_machine-0x{:x}", info.machine));
    let variant = if naming.variant_source.is_some() {
        platform.rsplit('/').next().map(str::to_string)
    } else {
        None
    };
    Sniff::Elf(ElfId {
        os: os.to_string(),
        arch: naming.arch,
        variant,
        kind: info.type_name(),
        judged: info.is_program(),
        platform,
        needs: None,
        mode: 0,
    })
}

/// What was scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Directory,
    Tar,
    Oci,
    #[serde(rename = "image-archive")]
    Archive,
    /// An image in a registry (`docker://`).
    Registry,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            Kind::Tar => "tar",
            Kind::Oci => "oci",
            Kind::Archive => "image-archive",
            Kind::Registry => "registry",
        }
    }
}

/// The whole answer: one verdict, or one per image of a multi-platform index.
#[derive(Debug, Clone)]
pub struct Report {
    pub root: PathBuf,
    pub kind: Kind,
    /// Compression of a tar: `gzip`, `zstd`, or none.
    pub compression: Option<&'static str>,
    pub images: Vec<Verdict>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.images.iter().all(|v| v.ok)
    }
}

/// Scan an image or tree wherever it lives (`source::Source`). `remote` says how to reach
/// registries and the Docker daemon; `platform` (from `--platform`) overrides what the image
/// says.
pub fn scan_source(
    table: &ArchTable,
    source: &source::Source,
    remote: &registry::Options,
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    use source::Source;
    match source {
        Source::Path(path) => scan(table, path, platform, progress),
        Source::Layout { dir, reference } => {
            oci::scan_layout_ref(table, dir, reference.as_deref(), platform, progress)
        }
        // Only a regular file is opened (`archive::open`), whatever the path says.
        Source::Archive(path) => tar::scan_file(table, path, platform, progress),
        Source::Stdin => stream::scan_stdin(table, platform, progress),
        Source::Registry(reference) => registry::scan(table, reference, remote, platform, progress),
        Source::Daemon(name) => daemon::scan(table, name, remote, platform, progress),
    }
}

/// Scan `path`: a directory, a tar (plain, gzip, zstd), an OCI image layout, or a
/// `docker save` archive. `platform` (from `--platform`) overrides what the image says.
pub fn scan(
    table: &ArchTable,
    path: &Path,
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ScanError::new(format!("cannot scan {}: {e}", path.display())))?;
    if meta.is_dir() {
        // `oci-layout` is the layout's own marker; index.json alone could be any web root's.
        if path.join("oci-layout").exists()
            || (path.join("index.json").is_file() && path.join("blobs").is_dir())
        {
            return oci::scan_layout(table, path, platform, progress);
        }
        tracing::info!(
            "{}: a directory, walked as a root file system",
            path.display()
        );
        let filter = platform.cloned().map(Arc::new);
        let tally = walk::walk(table, path, filter, progress)?;
        tracing::debug!(
            "{}: {} files, {} ELF",
            path.display(),
            tally.files,
            tally.elf_files
        );
        let given = platform.cloned().map(|x| (x, ExpectedFrom::Flag));
        return Ok(Report {
            root: path.to_path_buf(),
            kind: Kind::Directory,
            compression: None,
            images: vec![Verdict::judge(table, tally, given)],
        });
    }
    if !meta.is_file() {
        return Err(ScanError::new(format!(
            "cannot scan {}: it is {}, not a directory, tar file or OCI image layout",
            path.display(),
            crate::machine::Meta::of(&meta).kind.words()
        )));
    }
    tar::scan_file(table, path, platform, progress)
}

/// Turn a member name or walk path into the path inside the image: `/a/b`. `.` and empty
/// components go; `..` goes up but never above the root (nothing is extracted, so a hostile
/// `../../etc/passwd` is only a name, reported as `/etc/passwd`).
pub fn image_path(raw: &[u8]) -> String {
    // Losslessly: two members that differ only in bytes that are not UTF-8 stay two.
    let text = crate::names::escape(raw);
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = String::with_capacity(text.len() + 1);
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn id(platform: &str, arch: &str, variant: Option<&str>) -> ElfId {
        ElfId {
            platform: platform.into(),
            os: "linux".into(),
            arch: Some(arch.into()),
            variant: variant.map(str::to_string),
            kind: "exec".into(),
            judged: true,
            needs: None,
            mode: 0,
        }
    }

    #[test]
    fn expected_names_and_variants() {
        let t = ArchTable::embedded();
        for (name, want) in [
            ("arm64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("aarch64", "linux/arm64"),
            ("armhf", "linux/arm/v7"),
            ("armel", "linux/arm/v5"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("arm", "linux/arm/v7"),
            ("x86_64", "linux/amd64"),
        ] {
            assert_eq!(
                Expected::parse(&t, name).expect(name).platform(),
                want,
                "{name}"
            );
        }
        assert!(Expected::parse(&t, "vax").is_err());
        let x = Expected::from_image(&t, "linux", "arm", None).expect("arm");
        assert_eq!(x.platform(), "linux/arm/v7");
        assert!(Expected::from_image(&t, "linux", "wasm", None).is_none());
    }

    #[test]
    fn arm_runs_older_variants_only() {
        let t = ArchTable::embedded();
        let v7 = Expected::parse(&t, "linux/arm/v7").expect("v7");
        let v6 = Expected::parse(&t, "linux/arm/v6").expect("v6");
        let arm64 = Expected::parse(&t, "arm64").expect("arm64");
        let prog_v5 = id("linux/arm/v5", "arm", Some("v5"));
        let prog_v7 = id("linux/arm/v7", "arm", Some("v7"));
        assert!(v7.fits(&prog_v5) && v7.fits(&prog_v7));
        assert!(v6.fits(&prog_v5) && !v6.fits(&prog_v7));
        assert!(!arm64.fits(&prog_v7), "an arm/v7 program in an arm64 image");
        assert!(arm64.fits(&id("linux/arm64", "arm64", None)));
        let mut bsd = id("freebsd/arm64", "arm64", None);
        bsd.os = "freebsd".into();
        assert!(!arm64.fits(&bsd));
    }

    #[test]
    fn member_names_stay_inside_the_image() {
        assert_eq!(image_path(b"./usr/bin/x"), "/usr/bin/x");
        assert_eq!(image_path(b"../../etc/passwd"), "/etc/passwd");
        assert_eq!(image_path(b"/abs//a/./b/../c"), "/abs/a/c");
        assert_eq!(image_path(b"./"), "/");
    }

    pub(super) fn elf(platform: &str) -> Sniff {
        let arch = platform.rsplit('/').next().unwrap_or_default();
        Sniff::Elf(id(platform, arch, None))
    }

    #[test]
    fn majority_decides_and_names_the_odd_one() {
        let t = ArchTable::embedded();
        let mut tally = Tally::new(None);
        for i in 0..3 {
            tally.add(&format!("/bin/{i}"), elf("linux/arm64"), None);
        }
        tally.add("/server", elf("linux/amd64"), None);
        tally.add("/etc/passwd", Sniff::NotElf, None);
        let v = Verdict::judge(&t, tally, None);
        assert_eq!(v.expected.as_deref(), Some("linux/arm64"));
        assert_eq!(v.files, 5);
        assert_eq!(v.elf_files, 4);
        assert_eq!(v.mismatches.len(), 1);
        assert_eq!(v.mismatches[0].path, "/server");
        assert!(!v.ok);
    }
}
