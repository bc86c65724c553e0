//! `scan docker://` against a real registry: Debian's docker-registry (the CNCF
//! distribution registry) on loopback, behind TLS from a CA this test makes, with htpasswd
//! logins, holding two-platform manifest lists that skopeo pushed. The seed case: an arm64
//! userland with an amd64 /server, beside a clean linux/amd64 image.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::scan::{
    arm64_tree, copy, descriptor, layer_digests, open_tempdir, paths, s, tool, umoci_image,
};
use crate::util::{Run, bin};

pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret";

/// A docker-registry serving HTTPS on 127.0.0.1 with htpasswd logins; stopped on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Make a CA, a server certificate for 127.0.0.1 and localhost, a bcrypt htpasswd
    /// (the registry takes no other), and start the registry on a free port.
    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    /// The same, its logins through the token flow of `tokens` (a bearer challenge whose
    /// realm is that server) instead of basic ones.
    pub fn start_with(tokens: Option<&TokenServer>) -> Registry {
        let dir = open_tempdir();
        let d = dir.path();
        std::fs::create_dir_all(d.join("certs")).expect("mkdir certs");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .stdin(Stdio::null())
                .output()
                .expect("run openssl (scripts/setup.sh installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=binfmt-setup-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "certs/ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext.cnf");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "certs/ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ]);
        let htpasswd = tool("htpasswd", &["-Bbn", USER, PASSWORD]);
        std::fs::write(d.join("htpasswd"), htpasswd).expect("write htpasswd");
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("addr").port()
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n\
             http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {dir}/server.crt\n    key: {dir}/server.key\n\
             auth:\n{auth}",
            data = d.join("data").display(),
            dir = d.display(),
            auth = match tokens {
                None => format!(
                    "  htpasswd:\n    realm: binfmt-setup-test\n    path: {}/htpasswd\n",
                    d.display()
                ),
                Some(t) => format!(
                    "  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    \
                     issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    t.port,
                    t.cert.display()
                ),
            },
        );
        std::fs::write(d.join("config.yml"), config).expect("write config.yml");
        let log = std::fs::File::create(d.join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry (scripts/setup.sh installs it)");
        let mut registry = Registry { child, port, dir };
        registry.wait_ready();
        registry
    }

    /// Until the port answers; the registry exiting first fails the test with its log.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!("docker-registry exited ({status}): {}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "docker-registry did not listen on {} within a minute: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `docker://127.0.0.1:PORT/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("docker://{}/{name}", self.host())
    }

    /// The --cert-dir holding the test CA.
    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// The file of blob `digest` in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Push `from` (a skopeo source such as `oci:DIR:TAG`) as NAME:TAG, every platform.
    pub fn push(&self, from: &str, to: &str) {
        let creds = format!("{USER}:{PASSWORD}");
        tool(
            "skopeo",
            &[
                "copy",
                "--quiet",
                "--all",
                "--dest-creds",
                &creds,
                "--dest-cert-dir",
                s(&self.certs()),
                from,
                &format!("docker://{}/{to}", self.host()),
            ],
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SERVICE: &str = "binfmt-setup-test";
const ISSUER: &str = "binfmt-setup-test-issuer";

/// A token server, as registries that use the token flow have (Docker Hub's
/// auth.docker.io): plain HTTP on loopback, it answers a GET with the right basic login
/// with a JWT the registry trusts (RS256, signed by openssl with a key whose self-signed
/// certificate is the registry's rootcertbundle, the certificate in the x5c header), and
/// anything else with 401. The token grants pull and push on `app`. Stopped on drop.
pub struct TokenServer {
    pub port: u16,
    pub cert: PathBuf,
    /// Tokens handed out so far.
    pub issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    pub fn start() -> TokenServer {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let dir = open_tempdir();
        let d = dir.path();
        let key = d.join("token.key");
        let cert = d.join("token.crt");
        tool(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=binfmt-setup-test-issuer",
                "-keyout",
                s(&key),
                "-out",
                s(&cert),
            ],
        );
        let der = d.join("token.der");
        tool(
            "openssl",
            &["x509", "-in", s(&cert), "-outform", "DER", "-out", s(&der)],
        );
        let header = serde_json::json!({
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [STANDARD.encode(std::fs::read(&der).expect("der"))],
        });
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": USER, "aud": SERVICE, "jti": "binfmt-setup-test",
            "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
            "access": [{"type": "repository", "name": "app", "actions": ["pull", "push"]}],
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let input = d.join("input");
        let sig = d.join("sig");
        std::fs::write(&input, &signing_input).expect("write");
        tool(
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-sign",
                s(&key),
                "-out",
                s(&sig),
                s(&input),
            ],
        );
        let token = format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(std::fs::read(&sig).expect("sig"))
        );
        let expected = format!("basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = std::sync::Arc::clone(&issued);
        let thread = std::thread::spawn(move || {
            use std::io::{Read, Write};
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                if text.starts_with("GET /stop ") {
                    break;
                }
                let authorized = text.lines().any(|l| {
                    l.trim().to_ascii_lowercase()
                        == format!("authorization: {}", expected.to_ascii_lowercase())
                });
                let reply = if text.starts_with("GET /token") && authorized {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 3600}).to_string();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        TokenServer {
            port,
            cert,
            issued,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        use std::io::Write;
        if let Ok(mut c) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = c.write_all(b"GET /stop HTTP/1.0\r\n\r\n");
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An OCI layout with images `arm64` (an arm64 userland with an amd64 /server),
/// `arm64-clean` and `amd64`, and two manifest lists: `multi` (arm64 + amd64) and
/// `multi-clean` (arm64-clean + amd64), each an index inside the layout's index.json, as
/// buildx and `buildah manifest push --all` write them.
pub fn two_platform_layout(dir: &Path) -> PathBuf {
    let arm = dir.join("arm64-root");
    arm64_tree(&arm, true);
    let clean = dir.join("arm64-clean-root");
    arm64_tree(&clean, false);
    let amd = dir.join("amd64-root");
    copy("amd64", &amd.join("bin/hello"));
    copy("amd64", &amd.join("server"));
    let layout = dir.join("oci");
    umoci_image(&layout, "arm64", "arm64", &arm);
    umoci_image(&layout, "arm64-clean", "arm64", &clean);
    umoci_image(&layout, "amd64", "amd64", &amd);
    let platform = |arch: &str| serde_json::json!({"os": "linux", "architecture": arch});
    let entry = |tag: &str, arch: &str| {
        let mut d = descriptor(&layout, tag);
        d["platform"] = platform(arch);
        if let Some(a) = d.as_object_mut() {
            a.remove("annotations");
        }
        d
    };
    let index_path = layout.join("index.json");
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(&index_path).expect("index.json")).expect("json");
    for (name, first) in [("multi", "arm64"), ("multi-clean", "arm64-clean")] {
        let list = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [entry(first, "arm64"), entry("amd64", "amd64")],
        })
        .to_string();
        let blob = layout.join("blobs/sha256/list.tmp");
        std::fs::write(&blob, &list).expect("write list");
        let hex = tool("sha256sum", &[s(&blob)])
            .split_whitespace()
            .next()
            .expect("sha256sum")
            .to_string();
        std::fs::rename(&blob, layout.join("blobs/sha256").join(&hex)).expect("rename");
        index["manifests"]
            .as_array_mut()
            .expect("manifests")
            .push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": format!("sha256:{hex}"),
                "size": list.len(),
                "annotations": {"org.opencontainers.image.ref.name": name},
            }));
    }
    std::fs::write(&index_path, index.to_string()).expect("write index.json");
    layout
}

/// Run `binfmt-setup scan ARGS` with a deadline (a hung download fails the test).
pub fn scan(args: &[&str]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.arg("scan")
        .args(args)
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env("HOME", "/nonexistent");
    Run::within(&mut cmd, Duration::from_secs(300))
}

fn login() -> String {
    format!("{USER}:{PASSWORD}")
}

/// One line on stderr, naming what is wrong; nothing on stdout.
#[track_caller]
fn refused(r: &Run, code: i32, wants: &[&str]) {
    r.expect_code(code);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    for w in wants {
        assert!(r.stderr.contains(w), "wanted '{w}' in: {}", r.stderr);
    }
}

#[test]
fn registry_manifest_list_names_the_program_its_platform_manifest_and_layer() {
    let t = open_tempdir();
    let layout = two_platform_layout(t.path());
    let registry = Registry::start();
    registry.push(&format!("oci:{}:multi", s(&layout)), "app:1");
    registry.push(&format!("oci:{}:multi-clean", s(&layout)), "app:clean");
    let arm_manifest = descriptor(&layout, "arm64")["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let server_layer = layer_digests(&layout, "arm64").pop().expect("a layer");
    let certs = registry.certs();
    let app = registry.url("app:1");
    let creds = login();
    let base = ["--cert-dir", s(&certs), "--creds", &creds];

    let r = scan(&[&base[..], &["--json", &app]].concat());
    r.expect_code(1);
    let v = r.json();
    assert_eq!(v["kind"], "registry");
    assert_eq!(paths(&v["mismatches"]), ["/server"], "{v:#}");
    let m = &v["mismatches"][0];
    assert_eq!(m["platform"], "linux/amd64");
    assert_eq!(m["image"], "linux/arm64");
    assert_eq!(m["manifest"], arm_manifest.as_str());
    assert_eq!(m["layer"], server_layer.as_str());
    let images = v["images"].as_array().expect("images");
    assert_eq!(images.len(), 2, "every platform of the list: {v:#}");
    for i in images {
        let arm = i["platform"] == "linux/arm64";
        assert_eq!(i["ok"], !arm, "{i:#}");
        assert_eq!(
            i["expected"], i["platform"],
            "each against its own platform"
        );
    }

    // The human report names the same four things.
    let r = scan(&[&base[..], &[app.as_str()]].concat());
    r.expect_code(1);
    for want in [
        "/server",
        "linux/arm64",
        arm_manifest.as_str(),
        server_layer.as_str(),
    ] {
        assert!(r.stdout.contains(want), "wanted {want} in:\n{}", r.stdout);
    }

    // The clean tag, a platform picked, and the arm64 image by its digest.
    scan(&[&base[..], &[registry.url("app:clean").as_str()]].concat()).expect_code(0);
    let r = scan(&[&base[..], &["--json", "--platform", "linux/amd64", &app]].concat());
    r.expect_code(0);
    assert_eq!(r.json()["images"].as_array().map(Vec::len), Some(1));
    // Several platforms pick several images; one the list lacks is bad input.
    let r = scan(
        &[
            &base[..],
            &["--json", "--platform", "linux/amd64,arm64", &app],
        ]
        .concat(),
    );
    r.expect_code(1);
    assert_eq!(r.json()["images"].as_array().map(Vec::len), Some(2));
    refused(
        &scan(&[&base[..], &["--platform", "arm64,s390x", &app]].concat()),
        2,
        &["no image for linux/s390x", "linux/arm64"],
    );
    let by_digest = registry.url(&format!("app@{arm_manifest}"));
    let r = scan(&[&base[..], &["--json", &by_digest]].concat());
    r.expect_code(1);
    assert_eq!(paths(&r.json()["mismatches"]), ["/server"]);

    // Credentials from an authfile (Docker's config.json format) instead of --creds, and
    // --tls-verify=false instead of the CA.
    let authfile = t.path().join("auth.json");
    let encoded = tool("sh", &["-c", &format!("printf %s '{creds}' | base64 -w0")]);
    std::fs::write(
        &authfile,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{encoded}"}}}}}}"#,
            registry.host()
        ),
    )
    .expect("write authfile");
    scan(&["--authfile", s(&authfile), "--cert-dir", s(&certs), &app]).expect_code(1);
    scan(&["--tls-verify=false", "--creds", &creds, &app]).expect_code(1);
}

#[test]
fn registry_refusals_name_the_cause_and_exit_by_class() {
    let t = open_tempdir();
    let layout = two_platform_layout(t.path());
    let registry = Registry::start();
    registry.push(&format!("oci:{}:multi", s(&layout)), "app:1");
    let certs = registry.certs();
    let app = registry.url("app:1");
    let creds = login();

    // The environment refuses (3): no CA for the certificate, no login, a wrong login, a
    // registry that is not there.
    refused(
        &scan(&["--creds", &creds, &app]),
        3,
        &["UnknownIssuer", "--cert-dir"],
    );
    refused(
        &scan(&["--cert-dir", s(&certs), &app]),
        3,
        &["refused access", "needs a login", "--creds"],
    );
    refused(
        &scan(&["--cert-dir", s(&certs), "--creds", "tester:wrong", &app]),
        3,
        &["refused access", "credentials of tester", "--creds"],
    );
    let gone = {
        let l = TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    refused(
        &scan(&[
            "--cert-dir",
            s(&certs),
            &format!("docker://127.0.0.1:{gone}/app:1"),
        ]),
        3,
        &["cannot talk to", "is the registry running"],
    );

    // The input is wrong (2): a tag or a digest the registry does not have, a bad reference.
    let base = ["--cert-dir", s(&certs), "--creds", &creds];
    refused(
        &scan(&[&base[..], &[registry.url("app:2").as_str()]].concat()),
        2,
        &["app:2", "not found", "MANIFEST_UNKNOWN"],
    );
    let wrong = registry.url(&format!("app@sha256:{}", "0".repeat(64)));
    refused(
        &scan(&[&base[..], &[wrong.as_str()]].concat()),
        2,
        &["not found"],
    );
    refused(
        &scan(&[&base[..], &[registry.url("App:UPPER!").as_str()]].concat()),
        2,
        &["not an image reference"],
    );

    // A blob cut short in the registry's storage: the download's size and digest say so.
    let layer = layer_digests(&layout, "arm64").pop().expect("a layer");
    let file = registry.blob_file(&layer);
    let bytes = std::fs::read(&file).expect("blob in storage");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");
    refused(
        &scan(&[&base[..], &[app.as_str()]].concat()),
        2,
        &[&layer, "truncated", &format!("of {} bytes", bytes.len())],
    );
}

#[test]
fn registry_token_flow_logs_in_with_a_bearer_token() {
    let t = open_tempdir();
    let layout = two_platform_layout(t.path());
    let tokens = TokenServer::start();
    let registry = Registry::start_with(Some(&tokens));
    registry.push(&format!("oci:{}:multi", s(&layout)), "app:1");
    let certs = registry.certs();
    let app = registry.url("app:1");
    let creds = login();
    let before = tokens.issued.load(std::sync::atomic::Ordering::SeqCst);
    let r = scan(&["--json", "--cert-dir", s(&certs), "--creds", &creds, &app]);
    r.expect_code(1);
    assert_eq!(paths(&r.json()["mismatches"]), ["/server"]);
    assert!(
        tokens.issued.load(std::sync::atomic::Ordering::SeqCst) > before,
        "scan got its token from the token server"
    );
    refused(
        &scan(&["--cert-dir", s(&certs), &app]),
        3,
        &["refused access", "needs a login"],
    );
    refused(
        &scan(&["--cert-dir", s(&certs), "--creds", "tester:wrong", &app]),
        3,
        &["refused access", "credentials of tester"],
    );
    // --tls-verify=false covers the host named and no other: the token server on the same
    // host is used; named as localhost, the registry's token server (127.0.0.1) is another
    // host, refused before the login is sent anywhere.
    let before = tokens.issued.load(std::sync::atomic::Ordering::SeqCst);
    scan(&["--tls-verify=false", "--creds", &creds, &app]).expect_code(1);
    let after = tokens.issued.load(std::sync::atomic::Ordering::SeqCst);
    assert!(after > before, "the same host's token server was used");
    let elsewhere = app.replace("127.0.0.1", "localhost");
    assert_ne!(elsewhere, app);
    refused(
        &scan(&["--tls-verify=false", "--creds", &creds, &elsewhere]),
        2,
        &[
            "--tls-verify=false is for localhost only",
            "token server is 127.0.0.1",
        ],
    );
    assert_eq!(
        tokens.issued.load(std::sync::atomic::Ordering::SeqCst),
        after,
        "no token was issued"
    );
}
