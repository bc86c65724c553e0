//! A registry repository as scan's `Blobs`: manifests by digest, configs whole, layers
//! streamed into the tar reader with their size and digest checked on the way.

use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use oci_client::errors::DigestError;
use rayon::prelude::*;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::Remote;
use crate::arch::ArchTable;
use crate::scan::layers::Layer;
use crate::scan::oci::{Blobs, MAX_JSON};
use crate::scan::{Progress, ScanError, archive};

/// The repository, the documents fetched so far, and the sizes their descriptors give.
pub(super) struct RegistryBlobs {
    remote: Remote,
    manifests: Mutex<HashMap<String, Vec<u8>>>,
    sizes: Mutex<HashMap<String, u64>>,
}

impl RegistryBlobs {
    /// With the document the reference named already in hand.
    pub(super) fn new(remote: Remote, top: &[u8], digest: &str) -> RegistryBlobs {
        let blobs = RegistryBlobs {
            remote,
            manifests: Mutex::new(HashMap::new()),
            sizes: Mutex::new(HashMap::new()),
        };
        blobs.keep(digest, top.to_vec());
        blobs
    }

    /// Keep a manifest, and the sizes of the config and layers it lists.
    fn keep(&self, digest: &str, text: Vec<u8>) {
        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&text) {
            let mut sizes = self.sizes.lock().unwrap_or_else(|p| p.into_inner());
            let descriptors = doc["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(&doc["config"]));
            for d in descriptors {
                if let (Some(dg), Some(size)) = (d["digest"].as_str(), d["size"].as_u64()) {
                    sizes.insert(dg.to_string(), size);
                }
            }
        }
        self.manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_string(), text);
    }

    fn size(&self, digest: &str) -> Option<u64> {
        self.sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .copied()
    }

    /// A reader over blob `digest`, checked against it as it is read (oci-client's verifying
    /// stream fails the read that ends a blob whose bytes do not match).
    fn open(&self, digest: &str, what: &str) -> Result<impl Read + use<>, ScanError> {
        let r = &self.remote;
        let stream = r
            .runtime
            .block_on(r.client.pull_blob_stream(&r.at(digest), digest))
            .map_err(|e| r.fail(e, what))?;
        Ok(SyncIoBridge::new_with_handle(
            StreamReader::new(stream.stream),
            r.runtime.handle().clone(),
        ))
    }

    /// Read one layer into its entries.
    fn layer(
        &self,
        table: &ArchTable,
        digest: &str,
        label: &Arc<str>,
        progress: &Progress,
    ) -> Result<Layer, ScanError> {
        let what = format!("{}: layer {digest}", self.remote.what);
        let size = self.size(digest);
        let mut counted = Checked {
            inner: self.open(digest, &what)?,
            read: 0,
            failed: None,
            progress,
        };
        let entries = archive::layer_entries(
            table,
            BufReader::with_capacity(256 * 1024, &mut counted),
            &what,
            progress,
        );
        // Read what the tar reader left (end blocks, a gzip trailer): the digest is checked
        // over the whole blob, at its end.
        let drained = io::copy(&mut counted, &mut io::sink());
        let of = |n: u64| match size {
            Some(s) => format!("{n} of {s} bytes"),
            None => format!("{n} bytes"),
        };
        if let Some(e) = counted.failed.take().or(drained.err()) {
            let digest_error = e
                .get_ref()
                .is_some_and(|i| i.downcast_ref::<DigestError>().is_some());
            let short = size.is_some_and(|s| counted.read < s);
            return Err(if digest_error && short {
                ScanError::new(format!(
                    "{what}: the registry sent {} and they do not match the digest: the blob is truncated in the registry",
                    of(counted.read)
                ))
            } else if digest_error {
                ScanError::new(format!(
                    "{what}: the bytes the registry sent ({}) do not match the digest: the blob is damaged in the registry",
                    of(counted.read)
                ))
            } else {
                ScanError::environment(format!(
                    "{what}: the download broke off after {}: {}",
                    of(counted.read),
                    super::chain_of(&e)
                ))
            });
        }
        let entries = entries?;
        if let Some(s) = size
            && counted.read != s
        {
            return Err(ScanError::new(format!(
                "{what}: the registry sent {} bytes, the manifest says {s}",
                counted.read
            )));
        }
        progress.layers.fetch_add(1, Ordering::Relaxed);
        tracing::info!("layer {digest}: {} entries", entries.len());
        Ok(Layer {
            digest: Arc::clone(label),
            entries,
        })
    }
}

impl Blobs for RegistryBlobs {
    fn name(&self, blob: &str) -> String {
        format!("{}: {blob}", self.remote.what)
    }

    fn manifest(&self, digest: &str) -> Result<Vec<u8>, ScanError> {
        if let Some(text) = self
            .manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
        {
            return Ok(text.clone());
        }
        let r = &self.remote;
        let (body, _) = r
            .runtime
            .block_on(
                r.client
                    .pull_manifest_raw(&r.at(digest), &r.auth, super::ACCEPT),
            )
            .map_err(|e| r.fail(e, &self.name(digest)))?;
        if body.len() as u64 > MAX_JSON {
            return Err(ScanError::new(format!(
                "{} is larger than {} MiB; not a manifest",
                self.name(digest),
                MAX_JSON >> 20
            )));
        }
        self.keep(digest, body.to_vec());
        Ok(body.to_vec())
    }

    fn json(&self, blob: &str) -> Result<Vec<u8>, ScanError> {
        let what = self.name(blob);
        if self.size(blob).is_some_and(|s| s > MAX_JSON) {
            return Err(ScanError::new(format!(
                "{what} is larger than {} MiB; not an image config",
                MAX_JSON >> 20
            )));
        }
        let mut data = Vec::new();
        self.open(blob, &what)?
            .take(MAX_JSON + 1)
            .read_to_end(&mut data)
            .map_err(|e| {
                if e.get_ref()
                    .is_some_and(|i| i.downcast_ref::<DigestError>().is_some())
                {
                    ScanError::new(format!(
                        "{what}: what the registry sent does not match the digest"
                    ))
                } else {
                    ScanError::environment(format!("{what}: {}", super::chain_of(&e)))
                }
            })?;
        if data.len() as u64 > MAX_JSON {
            return Err(ScanError::new(format!(
                "{what} is larger than {} MiB; not an image config",
                MAX_JSON >> 20
            )));
        }
        Ok(data)
    }

    fn layers(
        &mut self,
        table: &ArchTable,
        wanted: &[(String, Arc<str>)],
        progress: &Progress,
    ) -> Result<HashMap<String, Arc<Layer>>, ScanError> {
        let total: u64 = wanted.iter().filter_map(|(k, _)| self.size(k)).sum();
        progress.bytes_total.fetch_add(total, Ordering::Relaxed);
        progress
            .layers_total
            .fetch_add(wanted.len() as u64, Ordering::Relaxed);
        let this = &*self;
        wanted
            .par_iter()
            .map(|(key, label)| {
                let layer = this.layer(table, key, label, progress)?;
                Ok((key.clone(), Arc::new(layer)))
            })
            .collect()
    }
}

/// A blob's bytes as the tar reader takes them: counted (for progress, and against the
/// size its descriptor gives), and the first failure kept, so a digest that does not match
/// is reported as that and not as the damaged tar stream it also makes.
struct Checked<'a, R> {
    inner: R,
    read: u64,
    failed: Option<io::Error>,
    progress: &'a Progress,
}

impl<R: Read> Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.read += n as u64;
                self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let again = io::Error::new(e.kind(), e.to_string());
                if self.failed.is_none() {
                    self.failed = Some(e);
                }
                Err(again)
            }
        }
    }
}
