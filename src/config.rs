//! Typed configuration: embedded defaults, then `daemon.toml`, then
//! `SIGNUPD_SECTION__KEY` environment variables, validated once at start-up.
//!
//! Nothing here guesses. An unknown key, a value of the wrong type or out of
//! range is an error that names the key and says how to fix it; no typo ever
//! silently falls back to a default. Secrets live in [`Secret`], which never
//! prints its contents.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Environment variables that override configuration keys start with this.
pub const ENV_PREFIX: &str = "SIGNUPD_";
/// Minimum secret length: HS256 needs at least as many key bytes as the hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// A configuration problem, worded for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// A string that is never shown: `Debug`, `Display` and `Serialize` mask it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn masked(&self) -> &'static str {
        if self.0.is_empty() { "" } else { "********" }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.masked())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.masked())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub mail: MailConfig,
    pub limits: LimitsConfig,
    pub logging: LoggingConfig,
    pub branding: BrandingConfig,
    pub dev: DevConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    pub public_url: String,
    pub max_body_bytes: u64,
    pub admin_socket: String,
    /// Seconds a client may take to send a request head; also the keep-alive idle limit.
    pub header_read_timeout: u64,
    /// Seconds a client may take to send a request body.
    pub body_read_timeout: u64,
    /// Open connections beyond this wait in the kernel's accept queue.
    pub max_connections: u64,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub path: String,
    /// sled's page cache in MiB (sled's own default is 1 GiB).
    pub cache_mb: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub secret_key: Secret,
    pub secret_key_file: String,
    pub issuer: String,
    /// HS256, HS384 or HS512.
    pub algorithm: String,
    pub confirmation_ttl: u64,
    pub reset_ttl: u64,
    pub access_ttl: u64,
    pub bcrypt_cost: u64,
    pub hash_workers: u64,
    /// Requests that may wait for a hashing worker before new ones get 503.
    pub hash_queue: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    pub from: String,
    pub smtp_host: String,
    pub smtp_port: u64,
    pub smtp_security: String,
    pub smtp_username: String,
    pub smtp_password: Secret,
    pub smtp_password_file: String,
    pub retry_initial: u64,
    pub retry_max: u64,
    pub max_lifetime: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub enabled: bool,
    pub per_ip_per_minute: u64,
    pub mail_interval: u64,
    pub login_failures_before_delay: u64,
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// A `RUST_LOG`-style filter; the `RUST_LOG` variable wins when set.
    pub filter: String,
    /// "text", or "json" for one JSON object per line.
    pub format: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandingConfig {
    /// Shown on every page.
    pub product_name: String,
    /// Shown on every page when set, for people who need help.
    pub support_email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevConfig {
    pub sink: bool,
    pub sink_listen: String,
    pub keep: u64,
    /// Lets the sink take non-ASCII addresses, which sign-up accepts.
    pub sink_smtputf8: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig {
                listen: "127.0.0.1:8000".into(),
                public_url: "http://localhost:8000".into(),
                max_body_bytes: 16384,
                admin_socket: "signupd.sock".into(),
                header_read_timeout: 10,
                body_read_timeout: 10,
                max_connections: 1024,
                shutdown_timeout: 20,
            },
            storage: StorageConfig {
                path: "data".into(),
                cache_mb: 16,
            },
            auth: AuthConfig {
                secret_key: Secret::default(),
                secret_key_file: String::new(),
                issuer: "signupd".into(),
                algorithm: "HS256".into(),
                confirmation_ttl: 86400,
                reset_ttl: 3600,
                access_ttl: 900,
                bcrypt_cost: 12,
                hash_workers: 0,
                hash_queue: 64,
            },
            mail: MailConfig {
                from: "noreply@example.com".into(),
                smtp_host: "localhost".into(),
                smtp_port: 25,
                smtp_security: "none".into(),
                smtp_username: String::new(),
                smtp_password: Secret::default(),
                smtp_password_file: String::new(),
                retry_initial: 60,
                retry_max: 3600,
                max_lifetime: 432000,
            },
            limits: LimitsConfig {
                enabled: true,
                per_ip_per_minute: 30,
                mail_interval: 60,
                login_failures_before_delay: 5,
                trusted_proxies: Vec::new(),
            },
            logging: LoggingConfig {
                filter: "info".into(),
                format: "text".into(),
            },
            branding: BrandingConfig {
                product_name: "signupd".into(),
                support_email: String::new(),
            },
            dev: DevConfig {
                sink: false,
                sink_listen: "127.0.0.1:2525".into(),
                keep: 1000,
                sink_smtputf8: true,
            },
        }
    }
}

/// Where the configuration came from, for messages and `check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Defaults,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Defaults => f.write_str("embedded defaults"),
        }
    }
}

/// Options from the command line that shape the configuration.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub config: Option<PathBuf>,
    pub dev: bool,
    /// Commands that sign nothing (`hash-password`) run without a secret.
    pub secret_optional: bool,
}

/// The configuration a command runs with.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub source: Source,
    /// Set when `--dev` made up a secret because none was configured.
    pub generated_secret: bool,
}

/// The file `--config` names, else `daemon.toml` here, else the system one.
pub fn locate(explicit: Option<&Path>) -> Result<Source, ConfigError> {
    if let Some(p) = explicit {
        if !p.is_file() {
            return err(format!(
                "config file {} does not exist; pass an existing file to --config or leave it out to use the defaults",
                p.display()
            ));
        }
        return Ok(Source::File(p.to_path_buf()));
    }
    for candidate in ["daemon.toml", "/etc/signupd/daemon.toml"] {
        let p = Path::new(candidate);
        if p.is_file() {
            return Ok(Source::File(p.to_path_buf()));
        }
    }
    Ok(Source::Defaults)
}

/// Loads defaults → file → environment, applies `--dev`, and validates.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let source = locate(opts.config.as_deref())?;
    let text = match &source {
        Source::File(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| ConfigError(format!("cannot read {}: {e}", p.display())))?,
        ),
        Source::Defaults => None,
    };
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    let mut config = from_parts(text.as_deref(), &source, &env)?;
    let mut generated_secret = false;
    if opts.dev {
        config.dev.sink = true;
    }
    config.resolve_secret_files()?;
    if config.auth.secret_key.is_empty() && config.dev.sink && opts.dev {
        config.auth.secret_key = Secret::new(random_secret());
        generated_secret = true;
    }
    config.validate_with(!opts.secret_optional)?;
    Ok(Loaded {
        config,
        source,
        generated_secret,
    })
}

fn random_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Merges a TOML document and environment overrides onto the defaults.
/// Split from [`load`] so it can be tested without touching the process.
pub fn from_parts(
    text: Option<&str>,
    source: &Source,
    env: &[(String, String)],
) -> Result<Config, ConfigError> {
    let defaults = toml::Table::try_from(Config::default())
        .map_err(|e| ConfigError(format!("internal: defaults do not serialise: {e}")))?;
    let mut merged = defaults.clone();

    if let Some(text) = text {
        let file: toml::Table = toml::from_str(text)
            .map_err(|e| ConfigError(format!("{source}: not valid TOML: {e}")))?;
        for (section, value) in file {
            let Some(toml::Value::Table(known)) = defaults.get(&section) else {
                return err(format!(
                    "{source}: unknown section [{section}]; known sections: {}",
                    names(&defaults)
                ));
            };
            let toml::Value::Table(entries) = value else {
                return err(format!(
                    "{source}: `{section}` must be a section ([{section}]), not a value"
                ));
            };
            for (key, value) in entries {
                let Some(default) = known.get(&key) else {
                    return err(format!(
                        "{source}: unknown key `{section}.{key}`; keys of [{section}]: {}",
                        names(known)
                    ));
                };
                if !same_type(default, &value) {
                    return err(format!(
                        "{source}: `{section}.{key}` must be {}, not {}",
                        describe(default),
                        value.type_str()
                    ));
                }
                set(&mut merged, &section, &key, value);
            }
        }
    }

    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            return err(format!(
                "environment variable {name}: expected SIGNUPD_SECTION__KEY (two underscores between section and key)"
            ));
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let default = match defaults.get(&section) {
            Some(toml::Value::Table(t)) => t.get(&key),
            _ => None,
        };
        let Some(default) = default else {
            return err(format!(
                "environment variable {name}: there is no key `{section}.{key}`; remove the variable or fix its name"
            ));
        };
        let value = parse_env_value(default, raw).ok_or_else(|| {
            ConfigError(format!(
                "environment variable {name}: `{section}.{key}` must be {}, got {raw:?}",
                describe(default)
            ))
        })?;
        set(&mut merged, &section, &key, value);
    }

    Config::deserialize(toml::Value::Table(merged))
        .map_err(|e| ConfigError(format!("{source}: {e}")))
}

fn names(t: &toml::Table) -> String {
    t.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
}

fn set(t: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    if let Some(toml::Value::Table(s)) = t.get_mut(section) {
        s.insert(key.to_string(), value);
    }
}

fn same_type(a: &toml::Value, b: &toml::Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn describe(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "a whole number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Array(_) => "a list such as [\"10.0.0.0/8\"]",
        _ => "a value of the documented type",
    }
}

fn parse_env_value(default: &toml::Value, raw: &str) -> Option<toml::Value> {
    match default {
        toml::Value::String(_) => Some(toml::Value::String(raw.to_string())),
        toml::Value::Integer(_) => raw.trim().parse::<i64>().ok().map(toml::Value::Integer),
        toml::Value::Boolean(_) => match raw.trim() {
            "true" | "1" => Some(toml::Value::Boolean(true)),
            "false" | "0" => Some(toml::Value::Boolean(false)),
            _ => None,
        },
        toml::Value::Array(_) => {
            let doc: toml::Table = toml::from_str(&format!("v = {raw}")).ok()?;
            match doc.get("v") {
                Some(v @ toml::Value::Array(_)) => Some(v.clone()),
                _ => None,
            }
        }
        _ => None,
    }
}

fn read_secret_file(key: &str, path: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("`{key}`: cannot read {path}: {e}")))?;
    // Files written by `echo` or editors end in a newline that is not part of the secret.
    Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
}

impl Config {
    /// Reads `*_file` secrets; setting both a secret and its file is
    /// ambiguous. With neither set, systemd credentials named `secret_key`
    /// and `smtp_password` (`LoadCredential=`) are used when present.
    fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let dir = PathBuf::from(dir);
            let cred = |name: &str| {
                let p = dir.join(name);
                p.is_file().then(|| p.to_string_lossy().into_owned())
            };
            if self.auth.secret_key.is_empty() && self.auth.secret_key_file.is_empty() {
                self.auth.secret_key_file = cred("secret_key").unwrap_or_default();
            }
            if self.mail.smtp_password.is_empty() && self.mail.smtp_password_file.is_empty() {
                self.mail.smtp_password_file = cred("smtp_password").unwrap_or_default();
            }
        }
        if !self.auth.secret_key_file.is_empty() {
            if !self.auth.secret_key.is_empty() {
                return err(
                    "set either `auth.secret_key` or `auth.secret_key_file`, not both".to_string(),
                );
            }
            self.auth.secret_key =
                read_secret_file("auth.secret_key_file", &self.auth.secret_key_file)?;
        }
        if !self.mail.smtp_password_file.is_empty() {
            if !self.mail.smtp_password.is_empty() {
                return err(
                    "set either `mail.smtp_password` or `mail.smtp_password_file`, not both"
                        .to_string(),
                );
            }
            self.mail.smtp_password =
                read_secret_file("mail.smtp_password_file", &self.mail.smtp_password_file)?;
        }
        Ok(())
    }

    /// Every check that does not need the network or the store.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with(true)
    }

    fn validate_with(&self, need_secret: bool) -> Result<(), ConfigError> {
        socket_addr("server.listen", &self.server.listen)?;
        let url = &self.server.public_url;
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.len() <= "https://".len()
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return err(format!(
                "`server.public_url` must be an absolute http:// or https:// URL such as \"https://accounts.example.org\", got {url:?}"
            ));
        }
        range(
            "server.max_body_bytes",
            self.server.max_body_bytes,
            256,
            64 << 20,
        )?;
        range(
            "server.header_read_timeout",
            self.server.header_read_timeout,
            1,
            3600,
        )?;
        range(
            "server.body_read_timeout",
            self.server.body_read_timeout,
            1,
            3600,
        )?;
        range(
            "server.max_connections",
            self.server.max_connections,
            1,
            1 << 20,
        )?;
        range(
            "server.shutdown_timeout",
            self.server.shutdown_timeout,
            1,
            3600,
        )?;
        if self.storage.path.is_empty() {
            return err("`storage.path` must name a directory for the database, such as \"data\"");
        }
        range("storage.cache_mb", self.storage.cache_mb, 1, 1 << 16)?;

        if self.auth.secret_key.is_empty() && need_secret {
            return err(
                "no secret key: set `auth.secret_key`, `auth.secret_key_file` or SIGNUPD_AUTH__SECRET_KEY \
                 (at least 32 random bytes, e.g. from `openssl rand -base64 48`), or run with --dev",
            );
        }
        if !self.auth.secret_key.is_empty()
            && self.auth.secret_key.expose().len() < MIN_SECRET_BYTES
        {
            return err(format!(
                "the secret key is {} bytes; it must be at least {MIN_SECRET_BYTES} (e.g. from `openssl rand -base64 48`)",
                self.auth.secret_key.expose().len()
            ));
        }
        if self.auth.issuer.is_empty() {
            return err("`auth.issuer` must not be empty");
        }
        if !["HS256", "HS384", "HS512"].contains(&self.auth.algorithm.as_str()) {
            return err(format!(
                "`auth.algorithm` must be \"HS256\", \"HS384\" or \"HS512\", got {:?}",
                self.auth.algorithm
            ));
        }
        range(
            "auth.confirmation_ttl",
            self.auth.confirmation_ttl,
            60,
            365 * 86400,
        )?;
        range("auth.reset_ttl", self.auth.reset_ttl, 60, 30 * 86400)?;
        range("auth.access_ttl", self.auth.access_ttl, 30, 30 * 86400)?;
        range("auth.bcrypt_cost", self.auth.bcrypt_cost, 4, 31)?;
        range("auth.hash_workers", self.auth.hash_workers, 0, 1024)?;
        range("auth.hash_queue", self.auth.hash_queue, 0, 1 << 20)?;

        if crate::accounts::validate_email(&self.mail.from).is_err() {
            return err(format!(
                "`mail.from` must be a plain address such as \"noreply@example.com\", got {:?}",
                self.mail.from
            ));
        }
        if self.mail.smtp_host.is_empty() {
            return err("`mail.smtp_host` must name the SMTP relay, such as \"localhost\"");
        }
        range("mail.smtp_port", self.mail.smtp_port, 1, 65535)?;
        if !["none", "starttls", "tls"].contains(&self.mail.smtp_security.as_str()) {
            return err(format!(
                "`mail.smtp_security` must be \"none\", \"starttls\" or \"tls\", got {:?}",
                self.mail.smtp_security
            ));
        }
        range("mail.retry_initial", self.mail.retry_initial, 1, 86400)?;
        range(
            "mail.retry_max",
            self.mail.retry_max,
            self.mail.retry_initial,
            7 * 86400,
        )?;
        range("mail.max_lifetime", self.mail.max_lifetime, 60, 60 * 86400)?;

        range(
            "limits.per_ip_per_minute",
            self.limits.per_ip_per_minute,
            1,
            1_000_000,
        )?;
        range("limits.mail_interval", self.limits.mail_interval, 0, 86400)?;
        for cidr in &self.limits.trusted_proxies {
            if crate::http::client_ip::Cidr::parse(cidr).is_none() {
                return err(format!(
                    "`limits.trusted_proxies`: {cidr:?} is not an address or CIDR such as \"10.0.0.0/8\" or \"::1\""
                ));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.logging.filter).is_err() {
            return err(format!(
                "`logging.filter` is not a valid filter such as \"info\" or \"signupd=debug\": {:?}",
                self.logging.filter
            ));
        }
        if !["text", "json"].contains(&self.logging.format.as_str()) {
            return err(format!(
                "`logging.format` must be \"text\" or \"json\", got {:?}",
                self.logging.format
            ));
        }
        if self.branding.product_name.trim().is_empty() {
            return err("`branding.product_name` must not be empty");
        }
        if !self.branding.support_email.is_empty()
            && crate::accounts::validate_email(&self.branding.support_email).is_err()
        {
            return err(format!(
                "`branding.support_email` must be an address such as \"help@example.com\", got {:?}",
                self.branding.support_email
            ));
        }
        socket_addr("dev.sink_listen", &self.dev.sink_listen)?;
        range("dev.keep", self.dev.keep, 1, 1_000_000)?;
        Ok(())
    }

    /// The settings as TOML with every secret masked.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// Number of bcrypt threads: the configured count, or one per core.
    pub fn hash_workers(&self) -> usize {
        match self.auth.hash_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }

    /// `server.admin_socket` resolved: relative paths live in the store directory.
    pub fn admin_socket_path(&self) -> PathBuf {
        let p = Path::new(&self.server.admin_socket);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            Path::new(&self.storage.path).join(p)
        }
    }
}

/// Parses an address key; `validate` has already refused bad ones.
pub fn socket_addr(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| {
        ConfigError(format!(
            "`{key}` must be an address and port such as \"127.0.0.1:8000\" or \"[::]:8000\", got {v:?}"
        ))
    })
}

fn range(key: &str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return err(format!("`{key}` must be between {lo} and {hi}, got {v}"));
    }
    Ok(())
}

/// Renders the effective settings for `check-config`.
pub fn describe_loaded(l: &Loaded) -> String {
    let mut out = format!("# signupd configuration from {}\n", l.source);
    if l.generated_secret {
        out.push_str("# auth.secret_key: generated for this --dev run\n");
    }
    out.push_str(&l.config.to_masked_toml());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<_> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let c = from_parts(Some(text), &Source::File("daemon.toml".into()), &env)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn file_then_env_override_defaults() {
        let c = parse(
            &format!(
                "[auth]\nsecret_key = \"{SECRET}\"\nbcrypt_cost = 10\n[mail]\nsmtp_port = 2525\n"
            ),
            &[
                ("SIGNUPD_MAIL__SMTP_PORT", "587"),
                ("SIGNUPD_LIMITS__ENABLED", "false"),
            ],
        )
        .unwrap();
        assert_eq!(c.auth.bcrypt_cost, 10);
        assert_eq!(c.mail.smtp_port, 587);
        assert!(!c.limits.enabled);
        assert_eq!(c.server.listen, "127.0.0.1:8000");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("[auth]\nbcrypt_cots = 10\n", &[], "auth.bcrypt_cots"),
            ("[nope]\n", &[], "[nope]"),
            (
                "[auth]\nbcrypt_cost = \"10\"\n",
                &[],
                "auth.bcrypt_cost` must be a whole number",
            ),
            (
                "",
                &[("SIGNUPD_AUTH__BCRYPT_COTS", "4")],
                "SIGNUPD_AUTH__BCRYPT_COTS",
            ),
            ("", &[("SIGNUPD_MAIL__SMTP_PORT", "x")], "mail.smtp_port"),
            ("[auth]\nbcrypt_cost = 3\n", &[], "auth.bcrypt_cost"),
            ("[server]\nlisten = \"localhost\"\n", &[], "server.listen"),
            (
                "[mail]\nsmtp_security = \"ssl\"\n",
                &[],
                "mail.smtp_security",
            ),
            (
                "[limits]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
                &[],
                "trusted_proxies",
            ),
            ("[logging]\nformat = \"xml\"\n", &[], "logging.format"),
            (
                "[branding]\nsupport_email = \"help\"\n",
                &[],
                "branding.support_email",
            ),
            (
                "[branding]\nproduct_name = \" \"\n",
                &[],
                "branding.product_name",
            ),
        ];
        for (text, env, want) in cases {
            let mut env: Vec<(&str, &str)> = env.to_vec();
            env.push(("SIGNUPD_AUTH__SECRET_KEY", SECRET));
            let e = parse(text, &env).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn secret_is_required_long_enough_and_masked() {
        let e = parse("", &[]).unwrap_err().to_string();
        assert!(e.contains("no secret key"), "{e}");
        let e = parse("", &[("SIGNUPD_AUTH__SECRET_KEY", "short")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 32"), "{e}");
        let c = parse("", &[("SIGNUPD_AUTH__SECRET_KEY", SECRET)]).unwrap();
        let shown = c.to_masked_toml();
        assert!(!shown.contains(SECRET));
        assert!(shown.contains("********"));
        assert!(!format!("{c:?}").contains(SECRET));
    }
}
