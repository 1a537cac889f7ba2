//! The service's configuration: `config.toml` in the data dir. Every key has a default that works,
//! so a missing file is a valid configuration; a bad file is an error that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The configuration file's name inside the data dir.
pub const FILE_NAME: &str = "config.toml";

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or a key has a wrong value.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// Which identity provider signs people in.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthBackend {
    /// The DSM session the browser already has (production).
    #[default]
    Dsm,
    /// Users listed in this file (the demo and tests).
    Static,
}

/// A user of the static backend.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticUser {
    /// Sign-in name.
    pub name: String,
    /// Password, compared in constant time (the file is readable by the service only).
    pub password: String,
    /// Whether the user is an administrator.
    #[serde(default)]
    pub admin: bool,
    /// The user's e-mail address, used to map them to their Microsoft 365 account.
    #[serde(default)]
    pub email: Option<String>,
}

/// `[auth]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `dsm` (default) or `static`.
    pub backend: AuthBackend,
    /// Users of the static backend.
    pub users: Vec<StaticUser>,
    /// DSM's `authenticate.cgi`; the first that exists is used.
    pub dsm_authenticate_cgi: Vec<PathBuf>,
    /// DSM's `login.cgi`, which hands out the SynoToken of a session.
    pub dsm_login_cgi: Vec<PathBuf>,
    /// The group file that says who is in DSM's `administrators` group.
    pub dsm_group_file: PathBuf,
    /// How long a verified DSM session is trusted before it is checked again, in seconds.
    pub dsm_cache_seconds: u64,
    /// DSM's web API on loopback, asked for the signed-in user's e-mail address
    /// (`SYNO.Core.NormalUser`); empty to not ask.
    pub dsm_webapi_url: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            backend: AuthBackend::Dsm,
            users: Vec::new(),
            dsm_authenticate_cgi: vec![
                "/usr/syno/synoman/webman/modules/authenticate.cgi".into(),
                "/usr/syno/synoman/webman/authenticate.cgi".into(),
            ],
            dsm_login_cgi: vec!["/usr/syno/synoman/webman/login.cgi".into()],
            dsm_group_file: "/etc/group".into(),
            dsm_cache_seconds: 30,
            dsm_webapi_url: "http://127.0.0.1:5000/webapi/entry.cgi".into(),
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the service listens (loopback; DSM's reverse proxy forwards to it).
    pub listen: SocketAddr,
    /// The built UI (static files); none served when absent.
    pub ui_dir: Option<PathBuf>,
    /// Where log files go (default: `<data dir>/log`).
    pub log_dir: Option<PathBuf>,
    /// The log filter (`info`, `debug`, `backhome=debug,warn`, …).
    pub log_level: String,
    /// Also log to the local syslog, which DSM's Log Center shows.
    pub syslog: bool,
    /// How many backup runs may go at once across all tasks.
    pub max_concurrent_runs: usize,
    /// Where new tasks' repositories go when the admin names none (default: `<data dir>/repositories`).
    pub repository_root: Option<PathBuf>,
    /// The program that shows DSM desktop notifications (default: DSM's `synodsmnotify` when present).
    pub notify_program: Option<PathBuf>,
    /// Sign-in.
    pub auth: AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8418)),
            ui_dir: None,
            log_dir: None,
            log_level: "info".into(),
            syslog: true,
            max_concurrent_runs: 2,
            repository_root: None,
            notify_program: None,
            auth: AuthConfig::default(),
        }
    }
}

impl Config {
    /// Reads `<data_dir>/config.toml`; the defaults when the file does not exist.
    ///
    /// # Errors
    /// An unreadable file, bad TOML, an unknown key or a bad value, named.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = data_dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                Self::parse(&text).map_err(|message| ConfigError::Invalid { path, message })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// Parses the text of a configuration file and checks it.
    ///
    /// # Errors
    /// A message naming the key and the problem.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_owned();
            match e
                .span()
                .map(|s| (line_of(text, s.start), key_at(text, s.start)))
            {
                Some((line, Some(key))) if !msg.contains(&key) => {
                    format!("{key} (line {line}): {msg}")
                }
                Some((line, _)) => format!("line {line}: {msg}"),
                None => msg,
            }
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() {
            return Err(format!(
                "listen: {} is not a loopback address; the service is reached through DSM's \
                 reverse proxy and must listen on 127.0.0.1",
                self.listen
            ));
        }
        if self.max_concurrent_runs == 0 {
            return Err("max_concurrent_runs: must be at least 1".into());
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return Err(format!(
                "log_level: {:?} is not a log filter",
                self.log_level
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, u) in self.auth.users.iter().enumerate() {
            if u.name.trim().is_empty() {
                return Err(format!("auth.users[{i}].name: must not be empty"));
            }
            if u.password.len() < 8 {
                return Err(format!(
                    "auth.users[{i}].password: must be at least 8 characters"
                ));
            }
            if !seen.insert(u.name.to_lowercase()) {
                return Err(format!(
                    "auth.users[{i}].name: {:?} is listed twice",
                    u.name
                ));
            }
        }
        if !self.auth.dsm_webapi_url.is_empty() {
            let ok = url::Url::parse(&self.auth.dsm_webapi_url).is_ok_and(|u| {
                u.scheme() == "http"
                    && matches!(u.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            });
            if !ok {
                return Err(format!(
                    "auth.dsm_webapi_url: {:?} must be an http:// URL on 127.0.0.1",
                    self.auth.dsm_webapi_url
                ));
            }
        }
        if self.auth.backend == AuthBackend::Static && self.auth.users.is_empty() {
            return Err("auth.users: the static backend needs at least one user".into());
        }
        Ok(())
    }
}

/// The dotted key whose value starts on the line of `offset` (`auth.backend`), if any.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let table = before[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.starts_with('[')
            .then(|| l.trim_matches(['[', ']']).trim().to_owned())
    });
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_owned(),
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.listen.port(), 8418);
        assert_eq!(c.auth.backend, AuthBackend::Dsm);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse("listen = \"0.0.0.0:80\"").unwrap_err();
        assert!(e.starts_with("listen:"), "{e}");
        let e = Config::parse("max_concurrent_runs = \"two\"").unwrap_err();
        assert!(e.starts_with("max_concurrent_runs (line 1)"), "{e}");
        let e = Config::parse("[auth]\nbackend = \"ldap\"\n").unwrap_err();
        assert!(
            e.starts_with("auth.backend (line 2)") && e.contains("ldap"),
            "{e}"
        );
        let e = Config::parse("lisen = \"127.0.0.1:1\"").unwrap_err();
        assert!(e.contains("lisen"), "{e}");
        let e = Config::parse("[auth]\nbackend = \"static\"\n").unwrap_err();
        assert!(e.starts_with("auth.users"), "{e}");
        let e = Config::parse(
            "[auth]\nbackend = \"static\"\n[[auth.users]]\nname = \"a\"\npassword = \"short\"\n",
        )
        .unwrap_err();
        assert!(e.starts_with("auth.users[0].password"), "{e}");
    }

    #[test]
    fn missing_file_is_defaults_and_bad_file_names_path() {
        let d = tempfile::tempdir().unwrap();
        assert!(Config::load(d.path()).is_ok());
        std::fs::write(d.path().join(FILE_NAME), "log_level = 3").unwrap();
        let e = Config::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("config.toml") && e.contains("line 1"), "{e}");
    }
}
