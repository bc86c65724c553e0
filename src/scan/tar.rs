//! Tar files: a root filesystem or a single layer, or, when it turns out to be one, the
//! image inside a `docker save` archive (or an OCI layout packed in a tar).

use std::path::Path;
use std::sync::Arc;

use super::archive;
use super::layers::LayerEntry;
use super::{Expected, ExpectedFrom, Kind, Progress, Report, ScanError, Tally, Verdict};
use crate::arch::ArchTable;

/// Scan a tar file: a root filesystem or a single layer, or, when it turns out to hold
/// `manifest.json` and layers (`docker save`) or an OCI layout, the image inside.
pub fn scan_file(
    table: &ArchTable,
    path: &Path,
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    let (reader, compression) = archive::open(path)?;
    let what = path.display().to_string();
    let mut tally = Tally::new(platform.cloned().map(Arc::new));
    let mut seen = ImageMarkers::default();
    archive::read_entries(table, reader, &what, progress, |entry| match entry {
        LayerEntry::File(p, sniff) => {
            seen.note(&p);
            tally.add(&p, sniff, None);
        }
        LayerEntry::Unreadable(p, e) => tally.unreadable(&p, e, None),
        // Whiteouts act on layers below; a tar alone has none.
        _ => {}
    })?;
    if seen.is_image() {
        return super::oci::scan_archive(table, path, platform, progress);
    }
    let given = platform.cloned().map(|x| (x, ExpectedFrom::Flag));
    Ok(Report {
        root: path.to_path_buf(),
        kind: Kind::Tar,
        compression,
        images: vec![Verdict::judge(table, tally, given)],
    })
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
            _ => {}
        }
    }

    fn is_image(&self) -> bool {
        (self.manifest_json && (self.layer_tar || self.blobs))
            || (self.index_json && self.oci_layout)
    }
}
