//! Tar files: a root filesystem or a single layer, or the image inside a `docker save`
//! archive (or an OCI layout packed in a tar). The file is read once: every regular member is
//! counted as a file of a root filesystem, and what an image would need (its small JSON
//! documents, and its layers where docker save and OCI put them) is kept beside; at the end,
//! the top-level names say which of the two the tar is.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::tar::EntryType;
use rayon::prelude::*;

use super::archive::{self, Data, Member};
use super::layers::{Entries, Layer};
use super::oci::{self, Blobs, MAX_JSON};
use super::{
    Expected, ExpectedFrom, HEAD, Kind, Progress, Report, ScanError, Sniff, Tally, Verdict,
    image_path,
};
use crate::arch::ArchTable;

/// What all small documents of a `docker save` archive may add up to (real ones: KiBs per
/// image).
const MAX_JSON_TOTAL: u64 = 16 << 20;

/// Scan a tar file: a root filesystem or a single layer, or, when it turns out to hold
/// `manifest.json` and layers (`docker save`) or an OCI layout, the image inside.
pub fn scan_file(
    table: &ArchTable,
    path: &Path,
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    let (reader, compression) = archive::open(path, crate::fileio::Follow::Yes)?;
    scan_stream(table, reader, compression, path, platform, progress)
}

/// Scan a tar stream already open and decompressed (a file, or standard input), read once;
/// `path` names it in the report and errors.
pub fn scan_stream(
    table: &ArchTable,
    reader: archive::Input<'_>,
    compression: Option<&'static str>,
    path: &Path,
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    let what = path.display().to_string();
    let mut pass = Pass {
        table,
        what: &what,
        progress,
        tally: Tally::new(platform.cloned().map(Arc::new)),
        seen: ImageMarkers::default(),
        blobs: ArchiveBlobs::new(path),
    };
    archive::members(reader, &what, |m| pass.member(m))?;
    if pass.seen.is_image() {
        let mut blobs = pass.blobs;
        let manifest = blobs.docs.get("manifest.json").cloned();
        let index = blobs.docs.get("index.json").cloned();
        let top = (manifest.as_deref(), index.as_deref());
        return oci::scan_archive(table, path, &mut blobs, top, platform, progress);
    }
    let given = platform.cloned().map(|x| (x, ExpectedFrom::Flag));
    Ok(Report {
        root: path.to_path_buf(),
        kind: Kind::Tar,
        compression,
        images: vec![Verdict::judge(table, pass.tally, given)],
    })
}

/// The one pass over a tar file, and what it keeps.
struct Pass<'a> {
    table: &'a ArchTable,
    what: &'a str,
    progress: &'a Progress,
    /// The regular members, as the files of a root filesystem.
    tally: Tally,
    seen: ImageMarkers,
    /// Documents and layers, in case the tar is an image archive.
    blobs: ArchiveBlobs,
}

impl Pass<'_> {
    /// Read one member once: identified for the tally, and kept as a document or read as a
    /// layer where an image archive would have one.
    fn member(&mut self, m: Member<'_, '_, '_>) -> Result<(), ScanError> {
        let name = m.path.trim_start_matches('/').to_string();
        let at_layer = is_layer_location(&name);
        if !archive::is_regular(m.kind) {
            // The tar crate read a link or directory as no data: an empty layer.
            if at_layer {
                self.blobs
                    .add_layer(name, Stored::Read(Ok(Entries::default())));
            }
            return Ok(());
        }
        let what = self.what;
        let path = m.path.as_str();
        let cannot =
            |e: io::Error| ScanError::new(format!("{what}: cannot read member {path}: {e}"));
        let place = m.data.place();
        let mut tap = Tap {
            inner: &mut *m.data,
            kept: None,
            failed: None,
        };
        let mut head = [0u8; HEAD];
        let got = archive::read_full(&mut tap, &mut head).map_err(cannot)?;
        let head = &head[..got];
        let doc = m.kind != EntryType::GNUSparse && self.blobs.doc_fits(&name, m.size);
        if doc && matches!(head.first(), Some(b'{' | b'[')) {
            tap.kept = Some(head.to_vec());
        }
        if at_layer {
            let member = format!("{what}: {name}");
            let layer = if archive::reads_on(head) {
                // A 32-bit ARM program: a program, not a tar stream.
                let e = format!("{member}: not a readable tar stream: an ARM program");
                Stored::Read(Err(ScanError::new(e)))
            } else if let Some((file, at)) = place {
                // In a plain file: read later, by position, if the image names it.
                Stored::At {
                    file,
                    at,
                    size: m.size,
                }
            } else {
                let replayed = io::BufReader::new(Cursor::new(head).chain(&mut tap));
                let layer = archive::layer_entries(self.table, replayed, &member, self.progress);
                // The archive's own failure is the archive's error, not a bad layer.
                if let Some(e) = tap.failed.take() {
                    return Err(cannot(e));
                }
                Stored::Read(layer)
            };
            self.blobs.add_layer(name.clone(), layer);
        }
        if tap.kept.is_some() {
            // A document is kept whole (it is small: `doc_fits`).
            io::copy(&mut tap, &mut io::sink()).map_err(cannot)?;
        }
        let kept = tap.kept.take();
        // Named from its first bytes, which a layer's are not; only a program (never read as
        // a layer, nor kept as a document) reads on from right after them, for its needs or
        // its ARM variant.
        let sniff = archive::sniff(self.table, head, m.data, m.size).map_err(cannot)?;
        let sniff = super::needing::with_mode(sniff, m.mode);
        let whole = m.data.finish().map_err(cannot)?;
        // Whiteouts act on layers below; a tar alone has none.
        if archive::whiteout(path).is_none() {
            archive::check_whole(whole, m.size, path, what)?;
            self.progress.file(!matches!(sniff, Sniff::NotElf));
            self.seen.note(path);
            self.tally.add(path, sniff, None);
        }
        if let Some(doc) = kept {
            self.blobs.add_doc(name, doc);
        }
        Ok(())
    }
}

/// A member's data as the pass reads it: kept whole when it may be a document, and its read
/// error remembered, so that a layer read through it cannot pass the archive's own failure
/// off as a bad layer.
struct Tap<'t, 'i, 'a> {
    inner: &'t mut Data<'i, 'a>,
    kept: Option<Vec<u8>>,
    failed: Option<io::Error>,
}

impl Read for Tap<'_, '_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                if let Some(kept) = &mut self.kept {
                    kept.extend_from_slice(&buf[..n]);
                }
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let again = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                Err(again)
            }
        }
    }
}

/// A member where a layer may be: read already (a compressed archive is read once, in
/// order), or where it is in a plain archive file, to be read by position if it is wanted.
enum Stored {
    Read(Result<Entries, ScanError>),
    At { file: Arc<File>, at: u64, size: u64 },
}

/// Where docker save and OCI layouts put layers: `blobs/<alg>/<hex>`, `<id>/layer.tar`, and
/// (skopeo's docker-archive) `<hex>.tar`. `member` is a member's name without its leading `/`.
fn is_layer_location(member: &str) -> bool {
    let parts: Vec<&str> = member.split('/').collect();
    matches!(parts.as_slice(), ["blobs", _, _] | [_, "layer.tar"])
        || matches!(parts.as_slice(), [name] if name.ends_with(".tar"))
}

/// The small documents and the layers of an image archive, as the pass over it kept them.
struct ArchiveBlobs {
    path: PathBuf,
    /// Member name (without a leading `/`) → content, for members that look like JSON.
    docs: HashMap<String, Vec<u8>>,
    docs_total: u64,
    /// Member name → each member of that name where a layer may be: its place in the
    /// archive, and the layer.
    layers: HashMap<String, Vec<(usize, Stored)>>,
    /// Members offered as layers so far: the next one's place.
    offered: usize,
}

impl ArchiveBlobs {
    fn new(path: &Path) -> ArchiveBlobs {
        ArchiveBlobs {
            path: path.to_path_buf(),
            docs: HashMap::new(),
            docs_total: 0,
            layers: HashMap::new(),
            offered: 0,
        }
    }

    /// Whether a member of `size` bytes may be kept as a document: only where an image
    /// archive has its documents (at the top, `manifest.json`, `index.json`, docker save's
    /// `<id>.json`; and blobs), MAX_JSON each, MAX_JSON_TOTAL in all. A root filesystem's
    /// own JSON files are not kept.
    fn doc_fits(&self, member: &str, size: u64) -> bool {
        let place = !member.contains('/') || member.starts_with("blobs/");
        place && size <= MAX_JSON && self.docs_total + size <= MAX_JSON_TOTAL
    }

    fn add_doc(&mut self, member: String, data: Vec<u8>) {
        self.docs_total += data.len() as u64;
        self.docs.insert(member, data);
    }

    /// A member where a layer may be.
    fn add_layer(&mut self, member: String, layer: Stored) {
        self.offered += 1;
        self.layers
            .entry(member)
            .or_default()
            .push((self.offered, layer));
    }

    /// Read the layers of the wanted members that are still stored, side by side.
    fn read_stored(&mut self, table: &ArchTable, wanted: &[String], progress: &Progress) {
        let mut todo = Vec::new();
        for m in wanted {
            for (place, layer) in self.layers.get(m).into_iter().flatten() {
                if let Stored::At { file, at, size } = layer {
                    todo.push((m.clone(), *place, Arc::clone(file), *at, *size));
                }
            }
        }
        todo.sort_by_key(|t| t.1);
        todo.dedup_by_key(|t| t.1);
        let path = self.path.display().to_string();
        let done: Vec<(String, usize, Result<Entries, ScanError>)> = todo
            .into_par_iter()
            .map(|(m, place, file, at, size)| {
                let what = format!("{path}: {m}");
                let layer = archive::stored_layer_entries(table, file, at, size, &what, progress);
                (m, place, layer)
            })
            .collect();
        for (m, place, layer) in done {
            if let Some(slot) = self
                .layers
                .get_mut(&m)
                .and_then(|v| v.iter_mut().find(|(p, _)| *p == place))
            {
                slot.1 = Stored::Read(layer);
            }
        }
    }

    /// A member's layer as reading the members in turn would leave it: the first that failed
    /// (reading would have stopped there), else the last; and its place.
    fn take_layer(&mut self, member: &str) -> Option<(usize, Result<Entries, ScanError>)> {
        let mut all = self.layers.remove(member)?;
        let first_failed = all
            .iter()
            .position(|(_, l)| matches!(l, Stored::Read(Err(_))));
        let (place, layer) = match first_failed {
            Some(i) => all.swap_remove(i),
            None => all.pop()?,
        };
        match layer {
            Stored::Read(r) => Some((place, r)),
            // Not read: not wanted (read_stored reads every wanted one).
            Stored::At { .. } => None,
        }
    }

    /// A blob key (a digest, or a member name) as a member name.
    fn member(blob: &str) -> String {
        match blob.split_once(':') {
            Some((alg, hex)) if oci::check_digest(blob).is_ok() => format!("blobs/{alg}/{hex}"),
            _ => image_path(blob.as_bytes())
                .trim_start_matches('/')
                .to_string(),
        }
    }
}

impl Blobs for ArchiveBlobs {
    fn name(&self, blob: &str) -> String {
        format!("{}: {}", self.path.display(), Self::member(blob))
    }

    fn json(&self, blob: &str) -> Result<Vec<u8>, ScanError> {
        self.docs.get(&Self::member(blob)).cloned().ok_or_else(|| {
            ScanError::new(format!(
                "{} is missing (or not a JSON document)",
                self.name(blob)
            ))
        })
    }

    /// The wanted layers: those the pass read, and those of a plain archive read now, side
    /// by side; the others are dropped unread. A wanted one that failed is an error, the
    /// first in archive order; then a wanted one not there at all.
    fn layers(
        &mut self,
        table: &ArchTable,
        wanted: &[(String, Arc<str>)],
        progress: &Progress,
    ) -> Result<HashMap<String, Arc<Layer>>, ScanError> {
        let members: Vec<String> = wanted.iter().map(|(k, _)| Self::member(k)).collect();
        self.read_stored(table, &members, progress);
        let mut found: HashMap<String, (usize, Result<Entries, ScanError>)> = HashMap::new();
        for m in &members {
            if !found.contains_key(m) {
                if let Some(layer) = self.take_layer(m) {
                    found.insert(m.clone(), layer);
                }
            }
        }
        let failed = found
            .iter()
            .filter(|(_, (_, l))| l.is_err())
            .map(|(m, (place, _))| (*place, m.clone()))
            .min();
        if let Some((_, (_, Err(e)))) = failed.and_then(|(_, m)| found.remove_entry(&m)) {
            return Err(e);
        }
        let mut out = HashMap::new();
        for (key, digest) in wanted {
            let member = Self::member(key);
            let Some((_, Ok(entries))) = found.remove(&member) else {
                return Err(ScanError::new(format!(
                    "{}: layer {member} is missing",
                    self.path.display()
                )));
            };
            let layer = Layer {
                digest: Arc::clone(digest),
                entries,
            };
            out.insert(key.clone(), Arc::new(layer));
        }
        Ok(out)
    }
}

/// Top-level names that make a tar an image archive rather than a root filesystem.
#[derive(Debug, Default)]
struct ImageMarkers {
    manifest_json: bool,
    layer_tar: bool,
    blobs: bool,
    index_json: bool,
    oci_layout: bool,
}

impl ImageMarkers {
    fn note(&mut self, path: &str) {
        match path {
            "/manifest.json" => self.manifest_json = true,
            "/index.json" => self.index_json = true,
            "/oci-layout" => self.oci_layout = true,
            p if p.starts_with("/blobs/") => self.blobs = true,
            p if p.ends_with("/layer.tar") => self.layer_tar = true,
            p if p.ends_with(".tar") && p.rfind('/') == Some(0) => self.layer_tar = true,
            _ => {}
        }
    }

    fn is_image(&self) -> bool {
        (self.manifest_json && (self.layer_tar || self.blobs))
            || (self.index_json && self.oci_layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(data).expect("gzip");
        z.finish().expect("gzip")
    }

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = ::tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = ::tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_cksum();
            b.append_data(&mut h, name, *data).expect("append");
        }
        b.into_inner().expect("tar")
    }

    /// The one pass keeps what the manifest names: a blob it does not name is dropped
    /// unread as a layer, even when it is no tar stream; a named layer that is absent or
    /// broken is an error naming that member.
    #[test]
    fn an_image_archive_is_judged_from_one_pass_keeping_only_named_layers() {
        let t = ArchTable::embedded();
        let program = |a: &str| crate::probe::program(t.find(a).expect(a)).expect("probe");
        let (arm64, amd64) = (program("arm64"), program("amd64"));
        let layer = tar_of(&[("bin/ok", &arm64), ("server", &amd64)]);
        let (l, c, junk) = ("a".repeat(64), "c".repeat(64), "f".repeat(64));
        let config = br#"{"os":"linux","architecture":"arm64"}"#;
        let manifest = |layer: &str| {
            format!(r#"[{{"Config":"blobs/sha256/{c}","Layers":["blobs/sha256/{layer}"]}}]"#)
        };
        // Each archive is scanned as a plain file (its layers read by position, side by
        // side, once the manifest names them) and gzip-compressed (read once, in order): the
        // answers must be the same.
        let scan = |members: &[(&str, &[u8])]| {
            let dir = tempfile::tempdir().expect("tempdir");
            let plain = dir.path().join("image.tar");
            std::fs::write(&plain, tar_of(members)).expect("write");
            let packed = dir.path().join("packed.tar.gz");
            std::fs::write(&packed, gzip(&tar_of(members))).expect("write");
            let a = scan_file(&t, &plain, None, &Progress::default());
            let b = scan_file(&t, &packed, None, &Progress::default());
            let said = |r: &Result<Report, ScanError>| match r {
                Ok(r) => format!("{:?}", r.images[0].mismatches),
                Err(e) => e.0.replace("packed.tar.gz", "image.tar"),
            };
            assert_eq!(said(&a), said(&b));
            a
        };
        let (lm, cm, jm) = (
            format!("blobs/sha256/{l}"),
            format!("blobs/sha256/{c}"),
            format!("blobs/sha256/{junk}"),
        );
        let good = manifest(&l);
        let report = scan(&[
            (&jm, b"no tar stream at all"),
            (&lm, &layer),
            (&cm, config),
            ("manifest.json", good.as_bytes()),
        ])
        .expect("scanned");
        assert_eq!(report.kind, Kind::Archive);
        let v = &report.images[0];
        assert_eq!(v.expected.as_deref(), Some("linux/arm64"));
        assert_eq!(v.files, 2);
        assert_eq!(v.mismatches.len(), 1);
        assert_eq!(v.mismatches[0].path, "/server");
        assert_eq!(v.mismatches[0].layer, Some(format!("sha256:{l}")));
        // A compressed layer; and a name given twice, as reading in turn would take it.
        let report = scan(&[
            (&lm, b"first of two"),
            (&lm, &gzip(&layer)),
            (&cm, config),
            ("manifest.json", good.as_bytes()),
        ]);
        assert!(report.expect_err("first failed").0.contains(&lm));
        let report = scan(&[
            (&lm, &layer),
            (&lm, &gzip(&layer)),
            (&cm, config),
            ("manifest.json", good.as_bytes()),
        ])
        .expect("scanned");
        assert_eq!(report.images[0].mismatches.len(), 1);

        let absent = manifest(&"b".repeat(64));
        let e = scan(&[
            (&lm, &layer),
            (&cm, config),
            ("manifest.json", absent.as_bytes()),
        ])
        .expect_err("absent layer");
        assert!(
            e.0.contains("layer blobs/sha256/bbbb") && e.0.contains("missing"),
            "{e}"
        );
        let broken = manifest(&junk);
        let e = scan(&[
            (&jm, b"no tar"),
            (&cm, config),
            ("manifest.json", broken.as_bytes()),
        ])
        .expect_err("broken layer");
        assert!(
            e.0.contains(&jm) && e.0.contains("not a readable tar stream"),
            "{e}"
        );
    }
}
