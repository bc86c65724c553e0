//! Who scan is to a registry: `--creds`, else the login an authfile (the Docker client's
//! config.json, podman's auth.json: the same format) keeps for that host, else nobody.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use super::Options;
use crate::fileio::{self, Follow};
use crate::scan::ScanError;

/// An authfile bigger than this is not one.
const MAX_AUTHFILE: usize = 1 << 20;

/// The credentials to use, and where they came from (errors say which).
#[derive(Clone)]
pub(super) enum Login {
    Anonymous {
        /// Why there is no login, when an authfile would have had one: a credential helper
        /// scan does not run.
        note: Option<String>,
    },
    Basic {
        user: String,
        password: String,
        from: String,
    },
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::Anonymous { .. } => f.write_str("anonymous"),
            Login::Basic { user, from, .. } => write!(f, "{user} ({from})"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, Entry>,
    #[serde(rename = "credsStore", default)]
    creds_store: Option<String>,
    #[serde(rename = "credHelpers", default)]
    cred_helpers: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The Docker client's config.json: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The login for `host` (`127.0.0.1:5000`, `docker.io`).
pub(super) fn login(options: &Options, host: &str) -> Result<Login, ScanError> {
    if let Some((user, password)) = &options.creds {
        return Ok(Login::Basic {
            user: user.clone(),
            password: password.clone(),
            from: "--creds".into(),
        });
    }
    let (path, explicit) = match &options.authfile {
        Some(p) => (p.clone(), true),
        None => match docker_config() {
            Some(p) => (p, false),
            None => return Ok(Login::Anonymous { note: None }),
        },
    };
    let file = match read(&path) {
        Ok(f) => f,
        // The default file is optional: no Docker login, no credentials.
        Err(_) if !explicit && !path.exists() => return Ok(Login::Anonymous { note: None }),
        Err(e) => return Err(e),
    };
    for (key, entry) in &file.auths {
        if !same_host(key, host) {
            continue;
        }
        let from = format!("{} ({key})", path.display());
        let bad = |why: &str| {
            ScanError::new(format!(
                "{}: the login for {key} is unusable: {why}; log in again or pass --creds USER:PASSWORD",
                path.display()
            ))
        };
        if let Some(encoded) = &entry.auth {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| bad("its auth is not base64"))?;
            let text = String::from_utf8(decoded).map_err(|_| bad("its auth is not text"))?;
            let (user, password) = text
                .split_once(':')
                .ok_or_else(|| bad("its auth is not USER:PASSWORD"))?;
            return Ok(Login::Basic {
                user: user.to_string(),
                password: password.to_string(),
                from,
            });
        }
        if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
            return Ok(Login::Basic {
                user: user.clone(),
                password: password.clone(),
                from,
            });
        }
    }
    let helper = file
        .cred_helpers
        .iter()
        .find(|(k, _)| same_host(k, host))
        .map(|(_, v)| v.clone())
        .or(file.creds_store);
    Ok(Login::Anonymous {
        note: helper.map(|h| {
            format!(
                "{} keeps logins in docker-credential-{h}, which scan does not run",
                path.display()
            )
        }),
    })
}

fn read(path: &Path) -> Result<AuthFile, ScanError> {
    let text = fileio::read_text(path, Follow::Yes, MAX_AUTHFILE)
        .map_err(|e| ScanError::new(format!("--authfile {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| ScanError::new(format!("--authfile {} is malformed: {e}", path.display())))
}

/// Whether an authfile key (`HOST`, `https://HOST/v1/`, `HOST/REPO`) names `host`.
fn same_host(key: &str, host: &str) -> bool {
    let bare = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let bare = bare.split('/').next().unwrap_or(bare);
    let docker_hub =
        |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    bare == host || (docker_hub(bare) && docker_hub(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authfile_logins_by_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://127.0.0.1:5443/v1/":{"auth":"dGVzdGVyOnMzY3JldA=="},
                "https://index.docker.io/v1/":{"username":"u","password":"p"}},
                "credHelpers":{"ghcr.io":"pass"}}"#,
        )
        .expect("write");
        let options = Options {
            authfile: Some(path.clone()),
            ..Options::default()
        };
        let Login::Basic { user, password, .. } = login(&options, "127.0.0.1:5443").expect("ok")
        else {
            panic!("no login")
        };
        assert_eq!((user.as_str(), password.as_str()), ("tester", "s3cret"));
        assert!(matches!(
            login(&options, "docker.io"),
            Ok(Login::Basic { .. })
        ));
        let Ok(Login::Anonymous { note: Some(note) }) = login(&options, "ghcr.io") else {
            panic!("no helper note")
        };
        assert!(note.contains("docker-credential-pass"), "{note}");
        assert!(matches!(
            login(&options, "other:1"),
            Ok(Login::Anonymous { note: None })
        ));
        let missing = Options {
            authfile: Some(dir.path().join("none.json")),
            ..Options::default()
        };
        assert!(
            login(&missing, "x").is_err(),
            "an explicit authfile must exist"
        );
    }
}
