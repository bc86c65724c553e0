//! `docker-daemon:NAME:TAG`: an image the local Docker Engine holds, read over its API
//! socket as `docker save` would write it (`GET /images/NAME/get`), streamed into the same
//! reader a `docker save` file or standard input goes through. Nothing is written to disk.

use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::registry::Options;
use super::{Expected, Progress, Report, ScanError, stream};
use crate::arch::ArchTable;

/// Where the Engine listens when DOCKER_HOST does not say.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Scan image `name` (`NAME[:TAG]`, `NAME@DIGEST` or an image id) of the Docker daemon.
pub fn scan(
    table: &ArchTable,
    name: &str,
    options: &Options,
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    let root = PathBuf::from(format!("docker-daemon:{name}"));
    let what = root.display().to_string();
    let socket = socket(options.docker_host.as_deref())?;
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "?#%".contains(c))
    {
        return Err(ScanError::new(format!(
            "{what}: not an image name (NAME:TAG, NAME@sha256:…, or an image id)"
        )));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| {
            ScanError::environment(format!("{what}: cannot start the HTTP client: {e}"))
        })?;
    let client = reqwest::Client::builder()
        .unix_socket(socket.as_path())
        .build()
        .map_err(|e| {
            ScanError::environment(format!("{what}: cannot set up the HTTP client: {e}"))
        })?;
    let at = socket.display();
    let unreachable = |e: reqwest::Error| {
        ScanError::environment(format!(
            "{what}: cannot reach the Docker daemon at {at}: {}; is dockerd running, and is DOCKER_HOST right?",
            super::registry::chain_of(&e)
        ))
    };
    // The host part is ignored on a unix socket; the API version is the daemon's own.
    let url = format!("http://docker/images/{name}/get");
    let response = runtime
        .block_on(client.get(&url).send())
        .map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        let body = runtime.block_on(response.text()).unwrap_or_default();
        let said = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.trim().to_string());
        return Err(if status.as_u16() == 404 {
            ScanError::new(format!(
                "{what}: the Docker daemon at {at} has no such image ({said}): `docker images` lists those it has"
            ))
        } else {
            ScanError::environment(format!(
                "{what}: the Docker daemon at {at} answered HTTP {}: {said}",
                status.as_u16()
            ))
        });
    }
    let body = response.bytes_stream().map_err(std::io::Error::other);
    let reader = SyncIoBridge::new_with_handle(StreamReader::new(body), runtime.handle().clone());
    let report = stream::scan_reader(table, reader, Path::new(&root), &what, platform, progress);
    // The stream's tasks end with the runtime, which must not be dropped inside it.
    runtime.shutdown_background();
    report
}

/// The socket path DOCKER_HOST (`unix:///run/docker.sock`) names, or the default one.
fn socket(host: Option<&str>) -> Result<PathBuf, ScanError> {
    match host {
        None | Some("") => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(h) => match h.strip_prefix("unix://") {
            Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
            _ => Err(ScanError::new(format!(
                "DOCKER_HOST={h}: scan reaches the Docker daemon over its unix socket only (unix:///PATH)"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_names_a_unix_socket() {
        assert_eq!(
            socket(None).expect("default"),
            PathBuf::from(DEFAULT_SOCKET)
        );
        assert_eq!(
            socket(Some("unix:///tmp/d.sock")).expect("unix"),
            PathBuf::from("/tmp/d.sock")
        );
        assert!(socket(Some("tcp://127.0.0.1:2375")).is_err());
    }
}
