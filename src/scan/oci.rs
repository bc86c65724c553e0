//! OCI image layouts (`index.json` → manifests → config → layers) and the image of a
//! `docker save` archive (`manifest.json` → config → layers, or an OCI layout inside the
//! tar), whose blobs `tar` keeps as it reads the archive. Each image
//! of an index is judged against its own platform; its layers are stacked with their
//! whiteouts first, so a file deleted by an upper layer is not reported.
//!
//! Every JSON document is size-capped before it is parsed, digests are checked for shape
//! before they become paths, and nested indexes are followed only a few levels deep.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Deserialize;

use super::layers::{Entries, Layer, stack};
use super::{Expected, ExpectedFrom, Kind, Progress, Report, ScanError, Verdict, archive};
use crate::arch::ArchTable;
use crate::fileio::{self, Follow};

/// index.json, manifests and configs bigger than this are refused (real ones are KiBs).
pub const MAX_JSON: u64 = 4 << 20;
/// Indexes inside indexes are followed this deep.
const MAX_DEPTH: usize = 4;

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

#[derive(Debug, Clone, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Platform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl Platform {
    fn name(&self) -> String {
        match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// One image of `docker save`'s manifest.json.
#[derive(Debug, Deserialize)]
struct DockerImage {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Where blobs come from: a layout directory, or members of an archive (`tar`).
pub(super) trait Blobs: Sync {
    /// The name errors use for a blob (`…/blobs/sha256/…`).
    fn name(&self, blob: &str) -> String;
    /// A small document, whole.
    fn json(&self, blob: &str) -> Result<Vec<u8>, ScanError>;
    /// An index or image manifest, whole: a registry serves these apart from blobs.
    fn manifest(&self, digest: &str) -> Result<Vec<u8>, ScanError> {
        self.json(digest)
    }
    /// Read each wanted layer (by blob key) into its entries.
    fn layers(
        &mut self,
        table: &ArchTable,
        wanted: &[(String, Arc<str>)],
        progress: &Progress,
    ) -> Result<HashMap<String, Arc<Layer>>, ScanError>;
}

/// One image to judge: its layers, in order, and the platform it says it is.
#[derive(Debug)]
struct Image {
    manifest: Option<String>,
    /// As the index lists it, else as the config says.
    platform: Option<String>,
    declared: Option<Platform>,
    /// Blob keys and the digest to report, lowest layer first.
    layers: Vec<(String, Arc<str>)>,
}

/// Scan an OCI image layout directory.
pub fn scan_layout(
    table: &ArchTable,
    root: &Path,
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    scan_layout_ref(table, root, None, platform, progress)
}

/// Scan an OCI image layout directory, only the images `reference` names when there is one
/// (`oci:DIR:REF`): a tag (`org.opencontainers.image.ref.name`) or a manifest digest.
pub fn scan_layout_ref(
    table: &ArchTable,
    root: &Path,
    reference: Option<&str>,
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    if let Ok(meta) = std::fs::metadata(root)
        && !meta.is_dir()
    {
        return Err(ScanError::new(format!(
            "cannot scan {}: it is {}, not a directory (an OCI image layout)",
            root.display(),
            crate::machine::Meta::of(&meta).kind.words()
        )));
    }
    // The path given may lead through symlinks; below it, none is followed (every document
    // and blob is opened with no symlink allowed anywhere on its path), so it is resolved
    // once here.
    let canonical = std::fs::canonicalize(root)
        .map_err(|e| ScanError::new(format!("cannot scan {}: {e}", root.display())))?;
    let mut blobs = LayoutDir {
        root: canonical.clone(),
    };
    let index_path = canonical.join("index.json");
    let mut text = read_capped(&index_path)?;
    if let Some(reference) = reference {
        text = super::source::narrow(&text, reference, &index_path.display().to_string())?;
    }
    let images = oci_images(&blobs, &text, &index_path.display().to_string())?;
    judge(
        table,
        root,
        Kind::Oci,
        &mut blobs,
        images,
        platform,
        progress,
    )
}

/// Scan the image inside a `docker save` archive at `path` (or an OCI layout packed in a
/// tar), from its top-level `manifest.json` or `index.json` and its `blobs`.
pub(super) fn scan_archive(
    table: &ArchTable,
    path: &Path,
    blobs: &mut dyn Blobs,
    (manifest_json, index_json): (Option<&[u8]>, Option<&[u8]>),
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    let what = path.display().to_string();
    let images = if let Some(text) = manifest_json {
        docker_images(blobs, text, &format!("{what}: manifest.json"))?
    } else if let Some(text) = index_json {
        oci_images(blobs, text, &format!("{what}: index.json"))?
    } else {
        return Err(ScanError::new(format!(
            "{what} holds neither manifest.json nor index.json"
        )));
    };
    judge(
        table,
        path,
        Kind::Archive,
        blobs,
        images,
        platform,
        progress,
    )
}

/// Scan the image a registry (or any store of manifests and blobs) serves: `top` is the
/// document a tag or digest names, an index or one image's manifest, with its digest.
pub(super) fn scan_remote(
    table: &ArchTable,
    root: &Path,
    blobs: &mut dyn Blobs,
    (top, digest): (&[u8], &str),
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    let what = root.display().to_string();
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    let head: Head = parse(top, &what)?;
    let images = if INDEX_TYPES.contains(&head.media_type.as_str()) || head.manifests.is_some() {
        oci_images(blobs, top, &what)?
    } else {
        // One image: an index of one, whose manifest the store already holds.
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": head.media_type, "digest": digest}],
        });
        oci_images(blobs, index.to_string().as_bytes(), &what)?
    };
    judge(
        table,
        root,
        Kind::Registry,
        blobs,
        images,
        platform,
        progress,
    )
}

fn parse<'a, T: Deserialize<'a>>(text: &'a [u8], what: &str) -> Result<T, ScanError> {
    serde_json::from_slice(text).map_err(|e| ScanError::new(format!("{what} is malformed: {e}")))
}

/// The images an index names, following nested indexes. Attestations are skipped.
fn oci_images(blobs: &dyn Blobs, index: &[u8], what: &str) -> Result<Vec<Image>, ScanError> {
    let mut images = Vec::new();
    let mut seen = HashSet::new();
    collect(blobs, index, what, 0, None, &mut images, &mut seen)?;
    if images.is_empty() {
        return Err(ScanError::new(format!("{what} lists no image manifest")));
    }
    Ok(images)
}

fn collect(
    blobs: &dyn Blobs,
    text: &[u8],
    what: &str,
    depth: usize,
    inherited: Option<&Platform>,
    images: &mut Vec<Image>,
    seen: &mut HashSet<String>,
) -> Result<(), ScanError> {
    let index: Index = parse(text, what)?;
    if index.schema_version != 2 {
        return Err(ScanError::new(format!(
            "{what} is malformed: schemaVersion is {}, not 2",
            index.schema_version
        )));
    }
    for d in index.manifests {
        check_digest(&d.digest).map_err(|e| ScanError::new(format!("{what} is malformed: {e}")))?;
        let is_attestation = d
            .annotations
            .get("vnd.docker.reference.type")
            .is_some_and(|t| t == "attestation-manifest")
            || d.platform
                .as_ref()
                .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
        if is_attestation || !seen.insert(d.digest.clone()) {
            continue;
        }
        let platform = d.platform.as_ref().or(inherited);
        if INDEX_TYPES.contains(&d.media_type.as_str()) {
            if depth >= MAX_DEPTH {
                return Err(ScanError::new(format!(
                    "{what}: indexes nest more than {MAX_DEPTH} deep"
                )));
            }
            let inner = blobs.manifest(&d.digest)?;
            collect(
                blobs,
                &inner,
                &blobs.name(&d.digest),
                depth + 1,
                platform,
                images,
                seen,
            )?;
        } else if d.media_type.is_empty() || MANIFEST_TYPES.contains(&d.media_type.as_str()) {
            let text = blobs.manifest(&d.digest)?;
            let manifest: Manifest = parse(&text, &blobs.name(&d.digest))?;
            let mut layers = Vec::new();
            for l in &manifest.layers {
                check_digest(&l.digest).map_err(|e| {
                    ScanError::new(format!("{} is malformed: {e}", blobs.name(&d.digest)))
                })?;
                layers.push((l.digest.clone(), Arc::from(l.digest.as_str())));
            }
            check_digest(&manifest.config.digest).map_err(|e| {
                ScanError::new(format!("{} is malformed: {e}", blobs.name(&d.digest)))
            })?;
            let config: Config = parse(
                &blobs.json(&manifest.config.digest)?,
                &blobs.name(&manifest.config.digest),
            )?;
            let mut declared = declared(config);
            // An index may name the variant a config leaves out (linux/arm/v6 as just arm).
            if let (Some(own), Some(listed)) = (declared.as_mut(), platform)
                && own.variant.is_none()
                && own.architecture == listed.architecture
            {
                own.variant = listed.variant.clone().filter(|v| !v.is_empty());
            }
            images.push(Image {
                manifest: Some(d.digest.clone()),
                platform: platform.map(Platform::name),
                declared,
                layers,
            });
        }
        // Other media types (artifacts, signatures) hold no file system.
    }
    Ok(())
}

fn declared(config: Config) -> Option<Platform> {
    (!config.architecture.is_empty()).then(|| Platform {
        os: if config.os.is_empty() {
            "linux".into()
        } else {
            config.os
        },
        architecture: config.architecture,
        variant: config.variant.filter(|v| !v.is_empty()),
    })
}

/// The images of `docker save`'s manifest.json.
fn docker_images(blobs: &dyn Blobs, text: &[u8], what: &str) -> Result<Vec<Image>, ScanError> {
    let list: Vec<DockerImage> = parse(text, what)?;
    if list.is_empty() {
        return Err(ScanError::new(format!("{what} lists no image")));
    }
    let mut images = Vec::new();
    for img in list {
        let config: Config = parse(&blobs.json(&img.config)?, &blobs.name(&img.config))?;
        let layers = img
            .layers
            .iter()
            .map(|l| (l.clone(), Arc::from(archive_digest(l).as_str())))
            .collect();
        images.push(Image {
            manifest: None,
            platform: None,
            declared: declared(config),
            layers,
        });
    }
    Ok(images)
}

/// The digest a layer member of `docker save` stands for: `blobs/sha256/HEX` is
/// `sha256:HEX`; an older `ID/layer.tar` is reported by that name.
fn archive_digest(member: &str) -> String {
    let parts: Vec<&str> = member.trim_start_matches("./").split('/').collect();
    match parts.as_slice() {
        ["blobs", alg, hex] => format!("{alg}:{hex}"),
        _ => member.to_string(),
    }
}

/// A digest must be `algorithm:hex` before it becomes a path under blobs/.
pub(super) fn check_digest(digest: &str) -> Result<(), String> {
    let ok = match digest.split_once(':') {
        Some(("sha256", hex)) => hex.len() == 64,
        Some(("sha512", hex)) => hex.len() == 128,
        _ => false,
    } && digest.split_once(':').is_some_and(|(_, h)| {
        h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    if ok {
        Ok(())
    } else {
        Err(format!("'{digest}' is not a sha256 or sha512 digest"))
    }
}

/// Judge each image: the one `--platform` picks (all when none is given), against that
/// flag, else its config's platform, else its majority.
fn judge(
    table: &ArchTable,
    root: &Path,
    kind: Kind,
    blobs: &mut dyn Blobs,
    images: Vec<Image>,
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    let images = select(table, root, images, platform)?;
    let wanted: Vec<(String, Arc<str>)> = {
        let mut seen = HashSet::new();
        images
            .iter()
            .flat_map(|i| i.layers.iter())
            .filter(|(k, _)| seen.insert(k.clone()))
            .cloned()
            .collect()
    };
    let layers = blobs.layers(table, &wanted, progress)?;
    let mut verdicts = Vec::new();
    for image in images {
        let expected = match platform {
            Some(x) => Some((x.clone(), ExpectedFrom::Flag)),
            None => match &image.declared {
                Some(p) => {
                    let x = Expected::from_image(table, &p.os, &p.architecture, p.variant.as_deref())
                        .ok_or_else(|| {
                            ScanError::new(format!(
                                "{}: image {} says its platform is {}, an architecture binfmt-setup does not know",
                                root.display(),
                                image.manifest.as_deref().unwrap_or("(docker save)"),
                                p.name()
                            ))
                        })?;
                    Some((x, ExpectedFrom::Image))
                }
                None => None,
            },
        };
        let stacked: Vec<Arc<Layer>> = image
            .layers
            .iter()
            .filter_map(|(k, _)| layers.get(k).cloned())
            .collect();
        let filter = expected.as_ref().map(|(x, _)| Arc::new(x.clone()));
        let tally = stack(&stacked, filter);
        let mut v = Verdict::judge(table, tally, expected);
        v.platform = image
            .platform
            .clone()
            .or_else(|| image.declared.as_ref().map(Platform::name));
        v.manifest = image.manifest.clone();
        // Each finding names its image: the platform and the manifest it is in.
        for m in &mut v.mismatches {
            m.image = v.platform.clone();
            m.manifest = v.manifest.clone();
        }
        for p in v.broken.iter_mut().chain(v.unreadable.iter_mut()) {
            p.image = v.platform.clone();
            p.manifest = v.manifest.clone();
        }
        verdicts.push(v);
    }
    Ok(Report {
        root: root.to_path_buf(),
        kind,
        compression: None,
        images: verdicts,
    })
}

/// With `--platform`, keep the images of that platform; an index without one is bad input.
/// A lone image is always scanned: the flag then says what it should be.
fn select(
    table: &ArchTable,
    root: &Path,
    images: Vec<Image>,
    platform: Option<&Expected>,
) -> Result<Vec<Image>, ScanError> {
    let Some(want) = platform else {
        return Ok(images);
    };
    if images.len() <= 1 {
        return Ok(images);
    }
    let names: Vec<String> = images
        .iter()
        .map(|i| {
            i.platform
                .clone()
                .or_else(|| i.declared.as_ref().map(Platform::name))
                .unwrap_or_else(|| "unknown".into())
        })
        .collect();
    let matches = |i: &Image| {
        let p = i
            .declared
            .as_ref()
            .map(|p| (p.os.clone(), p.architecture.clone(), p.variant.clone()));
        let from_index = i.platform.as_deref().map(|s| {
            let mut it = s.splitn(3, '/');
            (
                it.next().unwrap_or_default().to_string(),
                it.next().unwrap_or_default().to_string(),
                it.next().map(str::to_string),
            )
        });
        from_index.or(p).is_some_and(|(os, arch, variant)| {
            Expected::from_image(table, &os, &arch, variant.as_deref()).is_some_and(|x| x == *want)
        })
    };
    let (keep, _): (Vec<Image>, Vec<Image>) = images.into_iter().partition(matches);
    if keep.is_empty() {
        return Err(ScanError::new(format!(
            "{} has no image for {}; it has {}",
            root.display(),
            want.platform(),
            names.join(", ")
        )));
    }
    Ok(keep)
}

/// Read a small document of a layout whole, refusing a big one. Only a regular file, and
/// never through a symlink: a layout's `index.json` that links to /etc/passwd is not read.
fn read_capped(path: &Path) -> Result<Vec<u8>, ScanError> {
    let cannot =
        |e: &dyn std::fmt::Display| ScanError::new(format!("cannot read {}: {e}", path.display()));
    let (file, _) = fileio::open_regular(path, Follow::Nowhere).map_err(|e| cannot(&e))?;
    let data = fileio::read_prefix(&file, MAX_JSON as usize + 1).map_err(|e| cannot(&e))?;
    if data.len() as u64 > MAX_JSON {
        return Err(ScanError::new(format!(
            "{} is larger than {} MiB; not an image document",
            path.display(),
            MAX_JSON >> 20
        )));
    }
    Ok(data)
}

/// Blobs of a layout directory: `blobs/ALG/HEX`.
struct LayoutDir {
    root: PathBuf,
}

impl LayoutDir {
    fn path(&self, digest: &str) -> PathBuf {
        let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        self.root.join("blobs").join(alg).join(hex)
    }
}

impl Blobs for LayoutDir {
    fn name(&self, blob: &str) -> String {
        self.path(blob).display().to_string()
    }

    fn json(&self, blob: &str) -> Result<Vec<u8>, ScanError> {
        read_capped(&self.path(blob))
    }

    fn layers(
        &mut self,
        table: &ArchTable,
        wanted: &[(String, Arc<str>)],
        progress: &Progress,
    ) -> Result<HashMap<String, Arc<Layer>>, ScanError> {
        let this = &*self;
        wanted
            .par_iter()
            .map(|(key, digest)| {
                let path = this.path(key);
                let (reader, _) = archive::open(&path, Follow::Nowhere)?;
                let layer =
                    read_layer(table, reader, &path.display().to_string(), digest, progress)?;
                Ok((key.clone(), Arc::new(layer)))
            })
            .collect()
    }
}

fn read_layer(
    table: &ArchTable,
    reader: archive::Input<'_>,
    what: &str,
    digest: &Arc<str>,
    progress: &Progress,
) -> Result<Layer, ScanError> {
    let mut entries = Entries::default();
    archive::read_entries(table, reader, what, progress, |e| entries.push(e))?;
    entries.shrink_to_fit();
    tracing::info!("layer {digest}: {} entries", entries.len());
    Ok(Layer {
        digest: Arc::clone(digest),
        entries,
    })
}

/// Fuzzing (`fuzzing::oci_json`): an index.json, or `docker save`'s manifest.json, and the
/// documents it leads to, all from one buffer: documents are separated by NUL bytes, and
/// each blob asked for is the next document, in turn (a fuzzer cannot make digests match).
#[cfg(any(test, fuzzing))]
pub fn fuzz_documents(data: &[u8]) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct InTurn {
        docs: Vec<Vec<u8>>,
        next: AtomicUsize,
    }
    impl Blobs for InTurn {
        fn name(&self, blob: &str) -> String {
            format!("blob {blob}")
        }
        fn json(&self, blob: &str) -> Result<Vec<u8>, ScanError> {
            if self.docs.is_empty() {
                return Err(ScanError::new(format!("no document for {blob}")));
            }
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.docs.len();
            Ok(self.docs[i].clone())
        }
        fn layers(
            &mut self,
            _: &ArchTable,
            _: &[(String, Arc<str>)],
            _: &Progress,
        ) -> Result<HashMap<String, Arc<Layer>>, ScanError> {
            Ok(HashMap::new())
        }
    }
    let mut parts = data.split(|b| *b == 0);
    let first = parts.next().unwrap_or_default();
    let blobs = InTurn {
        docs: parts.map(<[u8]>::to_vec).collect(),
        next: AtomicUsize::new(0),
    };
    if let Ok(images) = oci_images(&blobs, first, "fuzz") {
        for i in images {
            for (key, _) in &i.layers {
                assert!(
                    check_digest(key).is_ok(),
                    "a layer digest that was not checked"
                );
            }
            let _ = i.platform;
        }
    }
    blobs.next.store(0, Ordering::Relaxed);
    let _ = docker_images(&blobs, first, "fuzz");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_before_they_become_paths() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(check_digest(&good).is_ok());
        assert!(check_digest("sha256:../../etc/passwd").is_err());
        assert!(check_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(check_digest("md5:abc").is_err());
    }

    #[test]
    fn docker_save_layer_names() {
        assert_eq!(archive_digest("blobs/sha256/abc"), "sha256:abc".to_string());
        assert_eq!(archive_digest("0123/layer.tar"), "0123/layer.tar");
    }
}
