//! Configuration: an optional TOML file, overridden by `PFORTE_*` environment variables.
//! Unknown keys in the file are errors (a typo must not silently fall back to a default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// Keys accepted in the file and (upper-cased, `PFORTE_`-prefixed) in the environment.
const KEYS: &[&str] = &[
    "listen",
    "base_url",
    "database_url",
    "data_dir",
    "master_key",
    "master_key_file",
    "log",
    "log_format",
    "dev_mode",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    base_url: Option<String>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    master_key: Option<String>,
    master_key_file: Option<PathBuf>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    dev_mode: Option<bool>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// `None`: derived from the address actually bound (so port 0 works).
    pub base_url: Option<String>,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub master_key: MasterKeySource,
    pub log: String,
    pub log_format: LogFormat,
    pub dev_mode: bool,
}

#[derive(Clone)]
pub enum MasterKeySource {
    Inline(String),
    File(PathBuf),
    /// Generated on first start into the data directory (development convenience).
    Generated(PathBuf),
}

/// Never prints the key itself: a `{:?}` of the configuration must be safe to log.
impl std::fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterKeySource::Inline(_) => f.write_str("Inline(<redacted>)"),
            MasterKeySource::File(p) => f.debug_tuple("File").field(p).finish(),
            MasterKeySource::Generated(p) => f.debug_tuple("Generated").field(p).finish(),
        }
    }
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                bail!(
                    "configuration file {} does not exist or is not a file\n  fix: pass an existing TOML file to --config",
                    path.display()
                );
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed("PFORTE_").only(KEYS));
        let raw: RawConfig = figment.extract().map_err(|e| config_error(e, file))?;
        Config::from_raw(raw)
    }

    fn from_raw(raw: RawConfig) -> Result<Config> {
        let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|e| {
            anyhow!(
                "listen = {listen_text:?} is not a socket address ({e})\n  fix: set PFORTE_LISTEN (or `listen`) to host:port, e.g. 127.0.0.1:8080"
            )
        })?;
        let base_url = raw.base_url.map(|u| u.trim_end_matches('/').to_owned());
        if let Some(u) = &base_url {
            let Some(authority) = u
                .strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"))
            else {
                bail!(
                    "base_url = {u:?} is not an http(s) URL\n  fix: set PFORTE_BASE_URL to the public URL, e.g. https://id.example.com"
                );
            };
            // Pages, form actions and cookie paths are /realms/..., at the root: under a
            // prefix (Keycloak's old /auth) discovery would advertise URLs the login form
            // and the cookies do not match, and every login would fail.
            if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
                bail!(
                    "base_url = {u:?} is not just scheme://host[:port]: pforte serves /realms/... at the root of its base URL, not under a path\n  fix: set PFORTE_BASE_URL to e.g. https://id.example.com, and let a reverse proxy in front forward /realms/ unchanged"
                );
            }
        }
        let data_dir = raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./pforte-data"));
        let database_url = match raw.database_url {
            Some(u) => u,
            None => format!("sqlite://{}", data_dir.join("pforte.db").display()),
        };
        let master_key = match (raw.master_key, raw.master_key_file) {
            (Some(_), Some(_)) => bail!(
                "both master_key and master_key_file are set\n  fix: set only one of PFORTE_MASTER_KEY and PFORTE_MASTER_KEY_FILE"
            ),
            (Some(k), None) => MasterKeySource::Inline(k),
            (None, Some(f)) => MasterKeySource::File(f),
            (None, None) => MasterKeySource::Generated(data_dir.join("master.key")),
        };
        Ok(Config {
            listen,
            base_url,
            database_url,
            data_dir,
            master_key,
            log: raw.log.unwrap_or_else(|| "info".into()),
            log_format: raw.log_format.unwrap_or_default(),
            dev_mode: raw.dev_mode.unwrap_or(false),
        })
    }
}

/// Turns figment's error into one that names the source, the key and the fix.
fn config_error(e: figment::Error, file: Option<&Path>) -> anyhow::Error {
    let mut out = String::new();
    for err in e {
        let key = if err.path.is_empty() {
            "(top level)".to_owned()
        } else {
            err.path.join(".")
        };
        let source = match &err.metadata {
            Some(m) if m.name.contains("environment") => {
                format!("environment variable PFORTE_{}", key.to_uppercase())
            }
            _ => file
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| "configuration".into()),
        };
        let fix = match &err.kind {
            figment::error::Kind::UnknownField(name, _) => format!(
                "unknown key `{name}`\n  fix: remove or rename it; accepted keys: {}",
                KEYS.join(", ")
            ),
            kind => {
                format!("key `{key}`: {kind}\n  fix: give `{key}` a value of the expected type")
            }
        };
        out.push_str(&format!("{source}: {fix}\n"));
    }
    anyhow!("invalid configuration\n{}", out.trim_end())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_file() {
        let c = Config::from_raw(RawConfig::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.base_url, None);
        assert!(c.database_url.starts_with("sqlite://"));
        assert!(matches!(c.master_key, MasterKeySource::Generated(_)));
    }

    #[test]
    fn debug_output_does_not_show_an_inline_master_key() {
        let shown = format!("{:?}", MasterKeySource::Inline("c2VjcmV0LWtleQ==".into()));
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert_eq!(shown, "Inline(<redacted>)");
    }

    #[test]
    fn base_url_is_scheme_host_and_port_only() {
        let with = |u: &str| {
            Config::from_raw(RawConfig {
                base_url: Some(u.into()),
                ..RawConfig::default()
            })
        };
        for ok in [
            "https://id.example.com",
            "https://id.example.com/",
            "http://127.0.0.1:8080",
        ] {
            assert!(with(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            with("https://id.example.com/").unwrap().base_url.as_deref(),
            Some("https://id.example.com")
        );
        for bad in [
            "https://id.example.com/auth",
            "https://id.example.com?x=1",
            "https://id.example.com#x",
            "https://user@id.example.com",
            "https://",
            "ftp://id.example.com",
        ] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains("fix: set PFORTE_BASE_URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_listen_names_the_fix() {
        let raw = RawConfig {
            listen: Some("nope".into()),
            ..RawConfig::default()
        };
        let e = Config::from_raw(raw).unwrap_err().to_string();
        assert!(e.contains("PFORTE_LISTEN"), "{e}");
    }
}
