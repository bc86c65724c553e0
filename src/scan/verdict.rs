//! What a scan found: the tally of files as they are read, and the verdict on an image once
//! its expected platform is known.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::{ElfId, Expected, Sniff};
use crate::arch::ArchTable;

/// One ELF file found, kept until the expected platform is known.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub id: ElfId,
    pub layer: Option<Arc<str>>,
}

/// A file that could not be judged, with why.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// As text, escaped losslessly when the name is not UTF-8 (`names`).
    pub path: String,
    /// The name's exact bytes in hex, when `path` had to be escaped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// The platform of the image it is in, as its index or config names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The digest of that image's manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
}

/// A program of the wrong platform.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// As text, escaped losslessly when the name is not UTF-8 (`names`).
    pub path: String,
    /// The name's exact bytes in hex, when `path` had to be escaped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub platform: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// The platform of the image it is in, as its index or config names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The digest of that image's manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
}

/// What one tree (a directory, a tar, the stacked layers of one image) holds. Threads keep
/// one each and merge them.
#[derive(Debug, Default)]
pub struct Tally {
    pub files: u64,
    pub elf_files: u64,
    pub by_platform: BTreeMap<String, u64>,
    /// Judged ELF files. With a known expected platform only the misfits are kept, so a
    /// scan's memory grows with its findings, not with the tree.
    hits: Vec<Hit>,
    pub broken: Vec<Problem>,
    pub unreadable: Vec<Problem>,
    /// When known before the scan, files that fit are not kept.
    filter: Option<Arc<Expected>>,
}

impl Tally {
    pub fn new(filter: Option<Arc<Expected>>) -> Tally {
        Tally {
            filter,
            ..Tally::default()
        }
    }

    /// Count a regular file at `path` (inside the image: `/usr/bin/x`).
    pub fn add(&mut self, path: &str, sniff: Sniff, layer: Option<&Arc<str>>) {
        self.files += 1;
        match sniff {
            Sniff::NotElf => {}
            Sniff::Broken(error) => {
                self.elf_files += 1;
                self.broken.push(Problem {
                    path_hex: crate::names::hex_of_escaped(path),
                    path: path.to_string(),
                    error,
                    layer: layer.map(|l| l.to_string()),
                    image: None,
                    manifest: None,
                });
            }
            Sniff::Elf(id) => {
                self.elf_files += 1;
                *self.by_platform.entry(id.platform.clone()).or_default() += 1;
                // A program the preflight looks at is kept even when it fits.
                let notable = id.needs.is_some() || id.mode & 0o6000 != 0;
                if id.judged && (notable || !self.filter.as_ref().is_some_and(|x| x.fits(&id))) {
                    self.hits.push(Hit {
                        path: path.to_string(),
                        id,
                        layer: layer.cloned(),
                    });
                }
            }
        }
    }

    /// A directory that could not be listed: its files are not counted, but reported.
    pub fn unreadable_dir(&mut self, path: &str, error: String) {
        self.unreadable.push(Problem {
            path_hex: crate::names::hex_of_escaped(path),
            path: path.to_string(),
            error,
            layer: None,
            image: None,
            manifest: None,
        });
    }

    /// A regular file that could not be opened or read.
    pub fn unreadable(&mut self, path: &str, error: String, layer: Option<&Arc<str>>) {
        self.files += 1;
        self.unreadable.push(Problem {
            path_hex: crate::names::hex_of_escaped(path),
            path: path.to_string(),
            error,
            layer: layer.map(|l| l.to_string()),
            image: None,
            manifest: None,
        });
    }

    pub fn merge(&mut self, other: Tally) {
        self.files += other.files;
        self.elf_files += other.elf_files;
        for (k, v) in other.by_platform {
            *self.by_platform.entry(k).or_default() += v;
        }
        self.hits.extend(other.hits);
        self.broken.extend(other.broken);
        self.unreadable.extend(other.unreadable);
    }

    /// The platform most judged Linux programs have, and how many have it.
    fn majority(&self) -> Option<(String, u64)> {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for h in &self.hits {
            if h.id.arch.is_some() && h.id.os == "linux" {
                *counts.entry(&h.id.platform).or_default() += 1;
            }
        }
        // Highest count; on a tie the first name in sorted order, so the answer is stable.
        let mut best: Option<(&str, u64)> = None;
        for (p, n) in counts {
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((p, n));
            }
        }
        best.map(|(p, n)| (p.to_string(), n))
    }
}

/// Where the expected platform came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedFrom {
    /// `--platform`.
    Flag,
    /// The image config's os/architecture/variant.
    Image,
    /// The platform most programs in the tree have.
    Majority,
    /// No ELF program to infer from.
    None,
}

/// The result for one tree or one image.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The image's platform as its index lists it (multi-platform images).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The image manifest's digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    pub expected: Option<String>,
    pub expected_from: ExpectedFrom,
    pub inferred: bool,
    pub files: u64,
    pub elf_files: u64,
    pub by_platform: BTreeMap<String, u64>,
    pub mismatches: Vec<Mismatch>,
    pub broken: Vec<Problem>,
    pub unreadable: Vec<Problem>,
    pub ok: bool,
    /// The programs the preflight looks at: those that need more than their family's
    /// baseline, and set-id ones (`preflight::check_image`).
    #[serde(skip)]
    pub programs: Vec<Hit>,
}

impl Verdict {
    /// Judge a tally against the expected platform (given, or inferred from the majority).
    pub fn judge(
        table: &ArchTable,
        tally: Tally,
        expected: Option<(Expected, ExpectedFrom)>,
    ) -> Verdict {
        let (expected, from) = match expected {
            Some((x, from)) => (Some(x), from),
            None => match tally.majority() {
                Some((platform, _)) => match Expected::parse(table, &platform) {
                    Ok(x) => (Some(x), ExpectedFrom::Majority),
                    Err(_) => (None, ExpectedFrom::None),
                },
                None => (None, ExpectedFrom::None),
            },
        };
        let programs: Vec<Hit> = tally
            .hits
            .iter()
            .filter(|h| h.id.needs.is_some() || h.id.mode & 0o6000 != 0)
            .cloned()
            .collect();
        let mut mismatches: Vec<Mismatch> = tally
            .hits
            .into_iter()
            .filter(|h| expected.as_ref().is_some_and(|x| !x.fits(&h.id)))
            .map(|h| Mismatch {
                path_hex: crate::names::hex_of_escaped(&h.path),
                path: h.path,
                platform: h.id.platform,
                kind: h.id.kind,
                layer: h.layer.map(|l| l.to_string()),
                image: None,
                manifest: None,
            })
            .collect();
        mismatches.sort_by(|a, b| a.path.cmp(&b.path));
        let mut broken = tally.broken;
        broken.sort_by(|a, b| a.path.cmp(&b.path));
        let mut unreadable = tally.unreadable;
        unreadable.sort_by(|a, b| a.path.cmp(&b.path));
        Verdict {
            platform: None,
            manifest: None,
            expected: expected.map(|x| x.platform()),
            expected_from: from,
            inferred: from == ExpectedFrom::Majority,
            files: tally.files,
            elf_files: tally.elf_files,
            by_platform: tally.by_platform,
            ok: mismatches.is_empty() && broken.is_empty() && unreadable.is_empty(),
            mismatches,
            broken,
            unreadable,
            programs,
        }
    }
}
