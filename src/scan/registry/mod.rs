//! `docker://`: images in a registry, through oci-client (the distribution API, its token
//! and basic logins, manifests and indexes in OCI and Docker media types). Manifests and
//! configs are fetched whole (they are small, and capped); layers are streamed into the same
//! tar reader a file goes through, their digests checked as they are read, and never stored.
//!
//! oci-client is async; one small runtime lives for the scan, and the readers that scan's
//! (synchronous) tar code pulls from block on it.

mod auth;
mod blobs;

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{Expected, Progress, Report, ScanError, oci};
use crate::arch::ArchTable;
use crate::fileio::{self, Follow};
use auth::Login;
pub use auth::docker_config;

/// How to reach registries and the Docker daemon (`scan`'s options).
#[derive(Debug, Clone)]
pub struct Options {
    /// `--creds USER:PASSWORD`.
    pub creds: Option<(String, String)>,
    /// `--authfile`: where logins are kept; `None`: the Docker client's config.json, if any.
    pub authfile: Option<PathBuf>,
    /// `--cert-dir`: CA certificates (`*.crt`) to trust for the registry.
    pub cert_dir: Option<PathBuf>,
    /// `--tls-verify=false`: plain HTTP, or HTTPS without checking the certificate.
    pub tls_verify: bool,
    /// The Docker Engine's API socket (`unix:///var/run/docker.sock`, as DOCKER_HOST says it).
    pub docker_host: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            creds: None,
            authfile: None,
            cert_dir: None,
            tls_verify: true,
            docker_host: None,
        }
    }
}

/// Index and manifest media types asked for: both OCI's and Docker's.
const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A CA certificate bigger than this is not one.
const MAX_CERT: usize = 1 << 20;

/// Scan the image `reference` (`HOST/REPO:TAG`, `HOST/REPO@sha256:…`) names.
pub fn scan(
    table: &ArchTable,
    reference: &str,
    options: &Options,
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    let root = PathBuf::from(format!("docker://{reference}"));
    let what = root.display().to_string();
    let image: Reference = reference.parse().map_err(|e| {
        ScanError::new(format!(
            "{what}: not an image reference ({e}); write docker://HOST/REPO:TAG or docker://HOST/REPO@sha256:DIGEST"
        ))
    })?;
    let remote = Remote::connect(image, options, what)?;
    let (top, digest) = remote.top()?;
    let mut blobs = blobs::RegistryBlobs::new(remote, &top, &digest);
    oci::scan_remote(
        table,
        Path::new(&root),
        &mut blobs,
        (&top, &digest),
        platform,
        progress,
    )
}

/// One registry repository, as the scan reaches it.
pub(super) struct Remote {
    runtime: tokio::runtime::Runtime,
    client: Client,
    image: Reference,
    auth: RegistryAuth,
    login: Login,
    /// `docker://HOST/REPO:TAG`, for messages.
    what: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({}, {:?})", self.what, self.login)
    }
}

impl Remote {
    fn connect(image: Reference, options: &Options, what: String) -> Result<Remote, ScanError> {
        let host = image.resolve_registry().to_string();
        let login = auth::login(options, &host)?;
        let auth = match &login {
            Login::Anonymous { .. } => RegistryAuth::Anonymous,
            Login::Basic { user, password, .. } => {
                RegistryAuth::Basic(user.clone(), password.clone())
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("registry")
            .enable_all()
            .build()
            .map_err(|e| {
                ScanError::environment(format!("{what}: cannot start the HTTP client: {e}"))
            })?;
        let client = make_client(options, &host, false, &what)?;
        let mut remote = Remote {
            runtime,
            client,
            image,
            auth,
            login,
            what,
        };
        // --tls-verify=false also means plain HTTP, as podman's does: when the registry does
        // not speak TLS at all, the same requests go again over HTTP.
        if !options.tls_verify {
            remote.tokens_from_the_named_host(&host)?;
            let probe = remote.runtime.block_on(
                remote
                    .client
                    .fetch_manifest_digest(&remote.image, &remote.auth),
            );
            if let Err(OciDistributionError::RequestError(e)) = &probe
                && speaks_plain_http(e)
            {
                tracing::info!("{host}: no TLS there; using plain HTTP (--tls-verify=false)");
                remote.client = make_client(options, &host, true, &remote.what)?;
            }
        }
        Ok(remote)
    }

    /// With --tls-verify=false the HTTP client checks no certificate, whatever host it talks
    /// to, and the token flow sends the login to the host the registry names as its realm.
    /// That host must be the one named on the command line: its realm is read first, with an
    /// unauthenticated `GET /v2/` (over HTTPS, or plain HTTP where the registry speaks no TLS),
    /// and another host is refused before any login is sent.
    fn tokens_from_the_named_host(&self, host: &str) -> Result<(), ScanError> {
        let named = host_name(host);
        let answer = |scheme: &str| {
            let url = format!("{scheme}://{host}/v2/");
            self.runtime.block_on(async {
                let client = reqwest::Client::builder()
                    .danger_accept_invalid_certs(true)
                    .timeout(Duration::from_secs(30))
                    .build()?;
                client.get(url).send().await
            })
        };
        let response = match answer("https") {
            Err(e) if speaks_plain_http(&e) => answer("http"),
            other => other,
        };
        // A registry that cannot be reached is reported by the requests that follow.
        let Ok(response) = response else {
            return Ok(());
        };
        let Some(realm) = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(realm_of)
        else {
            return Ok(());
        };
        let realm_host = reqwest::Url::parse(&realm)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string));
        match realm_host {
            Some(h) if h.eq_ignore_ascii_case(&named) => Ok(()),
            other => Err(ScanError::new(format!(
                "{}: --tls-verify=false is for {named} only, but its token server is {}, where your login would go without a checked certificate; drop --tls-verify=false and pass the registry's CA with --cert-dir DIR",
                self.what,
                other.unwrap_or(realm)
            ))),
        }
    }

    /// The document the reference names, and its digest (checked against the reference's
    /// own digest, when it has one).
    fn top(&self) -> Result<(Vec<u8>, String), ScanError> {
        let (body, digest) = self
            .runtime
            .block_on(
                self.client
                    .pull_manifest_raw(&self.image, &self.auth, ACCEPT),
            )
            .map_err(|e| self.fail(e, &self.what))?;
        if body.len() as u64 > oci::MAX_JSON {
            return Err(ScanError::new(format!(
                "{}: the manifest is larger than {} MiB; not an image manifest",
                self.what,
                oci::MAX_JSON >> 20
            )));
        }
        Ok((body.to_vec(), digest))
    }

    /// The same repository at `digest`.
    fn at(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.image.registry().to_string(),
            self.image.repository().to_string(),
            digest.to_string(),
        )
    }

    /// An error of the client in words that name `what` and the next step, classed.
    fn fail(&self, e: OciDistributionError, what: &str) -> ScanError {
        let host = self.image.resolve_registry();
        let login = || {
            match &self.login {
            Login::Basic { user, from, .. } => format!(
                "it did not accept the credentials of {user} (from {from}): check them, or pass others with --creds USER:PASSWORD"
            ),
            Login::Anonymous { note: Some(note) } => {
                format!("it needs a login, and {note}: pass --creds USER:PASSWORD")
            }
            Login::Anonymous { note: None } => "it needs a login: pass --creds USER:PASSWORD or --authfile FILE (default: the Docker client's config.json)".to_string(),
        }
        };
        let missing = |detail: &str| {
            ScanError::new(format!(
                "{what}: not found in {host} ({detail}): check the repository, tag or digest"
            ))
        };
        match e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => {
                ScanError::environment(format!("{what}: {host} refused access; {}", login()))
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                let said: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|x| {
                        let code = serde_json::to_value(&x.code)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_else(|| format!("{:?}", x.code));
                        if x.message.is_empty() {
                            code
                        } else {
                            format!("{code}: {}", x.message)
                        }
                    })
                    .collect();
                let said = said.join("; ");
                let code = envelope.errors.first().map(|x| &x.code);
                match code {
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::ManifestBlobUnknown
                        | OciErrorCode::NotFound,
                    ) => missing(&said),
                    Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => {
                        ScanError::environment(format!(
                            "{what}: {host} refused access ({said}); {}",
                            login()
                        ))
                    }
                    Some(OciErrorCode::Toomanyrequests) => ScanError::environment(format!(
                        "{what}: {host} is rate-limiting ({said}); try again later"
                    )),
                    _ => ScanError::new(format!("{what}: {host} refused the request: {said}")),
                }
            }
            OciDistributionError::ServerError { code, message, .. } => match code {
                404 => missing(&format!("HTTP 404 {}", message.trim())),
                401 | 403 => ScanError::environment(format!(
                    "{what}: {host} refused access (HTTP {code}); {}",
                    login()
                )),
                _ => ScanError::environment(format!(
                    "{what}: {host} answered HTTP {code}: {}",
                    message.trim()
                )),
            },
            OciDistributionError::DigestError(d) => ScanError::new(format!(
                "{what}: what {host} sent does not match its digest ({d}): the image is damaged, or the digest is wrong"
            )),
            OciDistributionError::RequestError(r) => {
                let text = chain_of(&r);
                let hint = if text.contains("certificate") || text.contains("UnknownIssuer") {
                    "; if the registry's certificate comes from a CA of its own, pass --cert-dir DIR holding that CA's .crt (--tls-verify=false stops checking, for this registry only)"
                } else if speaks_plain_http(&r) {
                    "; the registry speaks plain HTTP: pass --tls-verify=false"
                } else if r.is_connect() {
                    "; is the registry running, and is HOST:PORT right?"
                } else {
                    ""
                };
                ScanError::environment(format!("{what}: cannot talk to {host}: {text}{hint}"))
            }
            OciDistributionError::ManifestParsingError(m)
            | OciDistributionError::VersionedParsingError(m)
            | OciDistributionError::UnsupportedMediaTypeError(m) => {
                ScanError::new(format!("{what}: the manifest is malformed: {m}"))
            }
            OciDistributionError::UnsupportedSchemaVersionError(v) => ScanError::new(format!(
                "{what}: the manifest is malformed: schemaVersion is {v}, not 2"
            )),
            other => ScanError::new(format!("{what}: {}", chain_of(&other))),
        }
    }
}

/// An error and its causes, each said once.
pub fn chain_of(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

/// `HOST` of `HOST:PORT` (and of `[V6]:PORT`).
fn host_name(host: &str) -> String {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    name.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// The `realm` of a `WWW-Authenticate: Bearer realm="…",service="…"` challenge.
fn realm_of(challenge: &str) -> Option<String> {
    let (scheme, params) = challenge.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let at = params.to_ascii_lowercase().find("realm=")?;
    let value = params[at + "realm=".len()..].trim_start();
    let value = value.strip_prefix('"')?;
    Some(value[..value.find('"')?].to_string())
}

/// Whether a request failed because the server answered TLS with plain HTTP.
fn speaks_plain_http(e: &reqwest::Error) -> bool {
    let text = chain_of(e);
    text.contains("InvalidContentType") || text.contains("corrupt message")
}

/// The oci-client for `host`: HTTPS with the system's roots and the CAs of --cert-dir (or,
/// as podman and Docker do, of /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST).
fn make_client(
    options: &Options,
    host: &str,
    plain_http: bool,
    what: &str,
) -> Result<Client, ScanError> {
    let config = ClientConfig {
        protocol: if plain_http {
            ClientProtocol::HttpsExcept(vec![host.to_string()])
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: !options.tls_verify,
        extra_root_certificates: certificates(options, host)?,
        // Every image of an index is scanned: nothing is to choose one.
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(30)),
        read_timeout: Some(Duration::from_secs(120)),
        user_agent: concat!("binfmt-setup/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    };
    Client::try_from(config).map_err(|e| {
        ScanError::new(format!(
            "{what}: cannot set up the HTTP client: {}",
            chain_of(&e)
        ))
    })
}

/// The `*.crt` files of --cert-dir, or of the certs.d directories for `host`.
fn certificates(options: &Options, host: &str) -> Result<Vec<Certificate>, ScanError> {
    let (dirs, explicit) = match &options.cert_dir {
        Some(d) => (vec![d.clone()], true),
        None => (
            vec![
                Path::new("/etc/containers/certs.d").join(host),
                Path::new("/etc/docker/certs.d").join(host),
            ],
            false,
        ),
    };
    let mut out = Vec::new();
    for dir in dirs {
        if explicit
            && let Ok(meta) = std::fs::metadata(&dir)
            && !meta.is_dir()
        {
            return Err(ScanError::new(format!(
                "--cert-dir {}: it is {}, not a directory of CA certificates",
                dir.display(),
                crate::machine::Meta::of(&meta).kind.words()
            )));
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(_) if !explicit => continue,
            Err(e) => {
                return Err(ScanError::new(format!(
                    "--cert-dir {}: {}",
                    dir.display(),
                    crate::error::io_words(&e)
                )));
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect();
        paths.sort();
        for path in paths {
            let text = fileio::read_text(&path, Follow::Yes, MAX_CERT)
                .map_err(|e| ScanError::new(format!("{}: {e}", path.display())))?;
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(ScanError::new(format!(
                    "{}: not a PEM certificate (a .crt in a cert dir is a CA certificate)",
                    path.display()
                )));
            }
            out.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: text.into_bytes(),
            });
        }
        if explicit && out.is_empty() {
            return Err(ScanError::new(format!(
                "--cert-dir {} holds no *.crt file (the CA certificate to trust)",
                dir.display()
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_realm_and_host_names_are_read_as_registries_write_them() {
        assert_eq!(
            realm_of(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#),
            Some("https://auth.docker.io/token".into())
        );
        assert_eq!(realm_of(r#"Basic realm="x""#), None);
        assert_eq!(realm_of(r#"Bearer service="x""#), None);
        assert_eq!(host_name("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(host_name("[::1]:5000"), "::1");
        assert_eq!(host_name("registry.example"), "registry.example");
    }
}
