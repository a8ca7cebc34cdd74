//! Settings: command-line flags, then environment variables, then a `.env` file in the working
//! directory, in that order of precedence. Every setting is validated here, at the edge, so an
//! invalid one stops start-up with one line that names it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// `kitsulan`: a self-hosted, end-to-end encrypted messenger.
#[derive(Debug, Parser)]
#[command(name = "kitsulan", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every subcommand: where the data lives and how to log.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory for the SQLite database and local files.
    #[arg(long, env = "KITSULAN_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// Database to use: `postgres://user:pass@host/db` for PostgreSQL, or `sqlite://path`.
    /// Unset: a SQLite file `kitsulan.db` in the data dir.
    #[arg(long, env = "DATABASE_URL", value_parser = DatabaseUrl::parse, global = true, hide_env_values = true)]
    pub database_url: Option<DatabaseUrl>,

    /// Largest number of open database connections.
    #[arg(long, env = "KITSULAN_DB_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_max_connections: u32,

    /// Log format: `pretty` for people, `json` for log collectors.
    #[arg(long, env = "KITSULAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info` or `info,kitsulan_server=debug`.
    #[arg(long, env = "KITSULAN_LOG", default_value = "info", value_parser = parse_log_filter, global = true)]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: API, gateway and web app on one port.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Administer this server (no admin commands exist yet; they come with accounts).
    Admin,
}

/// Settings of `kitsulan serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (HTTP/1.1, HTTP/2 cleartext, gRPC and gRPC-Web).
    #[arg(long, env = "KITSULAN_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// The name this server shows to people.
    #[arg(long, env = "KITSULAN_SERVER_NAME", default_value = "KitsuLAN", value_parser = parse_server_name)]
    pub server_name: String,

    /// Seconds to let in-flight requests finish after SIGINT/SIGTERM before closing anyway.
    #[arg(long, env = "KITSULAN_SHUTDOWN_GRACE_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace_seconds: u64,
}

impl ServeArgs {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A validated database location. Its `Debug` and `Display` never show a password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (may carry a password).
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `postgres://…`, `postgresql://…` or `sqlite://path` (also `sqlite:path`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            if raw.len() <= "postgresql://".len() && !raw.contains('@') && raw.ends_with("//") {
                return Err("a postgres URL needs a host, e.g. postgres://user@host/db".into());
            }
            return Ok(Self::Postgres(raw.to_owned()));
        }
        if let Some(path) = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("sqlite:")) {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err("a sqlite URL needs a file path, e.g. sqlite://data/kitsulan.db".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        Err("expected a URL starting with postgres://, postgresql:// or sqlite://".into())
    }

    /// The database the settings select: `DATABASE_URL` if set, else SQLite in the data dir.
    pub fn resolve(explicit: Option<&DatabaseUrl>, data_dir: &std::path::Path) -> DatabaseUrl {
        explicit.cloned().unwrap_or_else(|| DatabaseUrl::Sqlite(data_dir.join("kitsulan.db")))
    }

    /// The URL with any password replaced by `***`, for logs and error messages.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => redact_password(url),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_owned() };
            // A query string may carry `password=` too.
            let tail = match tail.split_once('?') {
                Some((path, query)) if query.contains("password") => format!("{path}?***"),
                _ => tail.to_owned(),
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => match tail.split_once('?') {
            Some((path, query)) if query.contains("password") => {
                format!("{scheme}://{authority}{path}?***")
            }
            _ => url.to_owned(),
        },
    }
}

fn parse_log_filter(raw: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(raw)
        .map(|_| raw.to_owned())
        .map_err(|e| format!("not a valid log filter ({e})"))
}

fn parse_server_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > 64 {
        return Err("must be at most 64 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(name.to_owned())
}

/// Why the settings could not be read.
#[derive(Debug)]
pub enum ConfigError {
    /// `--help` or `--version` was asked for, or no subcommand given: clap prints it.
    Clap(clap::Error),
    /// One setting is invalid: the message is one line that names it.
    Invalid(String),
}

/// Reads `.env` (if present), then parses flags and environment variables.
pub fn load() -> Result<Cli, ConfigError> {
    load_from(std::env::args_os())
}

/// As [`load`], with explicit arguments.
pub fn load_from<I, T>(args: I) -> Result<Cli, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    // `.env` never overrides variables already set, which gives flags > env > `.env`.
    match dotenvy::from_path(".env") {
        Ok(()) => {}
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ConfigError::Invalid(format!("invalid .env file: {e}"))),
    }
    Cli::try_parse_from(args).map_err(|e| match e.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            ConfigError::Invalid(describe_invalid_setting(&e))
        }
        _ => ConfigError::Clap(e),
    })
}

/// Turns clap's error into one line naming the setting by its environment variable and flag.
fn describe_invalid_setting(err: &clap::Error) -> String {
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let long = arg.trim_start_matches("--").split([' ', '=']).next().unwrap_or_default().to_owned();
    let cmd = Cli::command();
    let mut env = None;
    let mut secret = false;
    let mut visit = vec![&cmd];
    while let Some(c) = visit.pop() {
        for a in c.get_arguments() {
            if a.get_long() == Some(long.as_str()) {
                env = a.get_env().map(|e| e.to_string_lossy().into_owned());
                secret = a.is_hide_env_values_set();
            }
        }
        visit.extend(c.get_subcommands());
    }
    let reason = match err.source() {
        Some(source) => source.to_string(),
        None => match err.kind() {
            ErrorKind::InvalidValue => match err.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(valid)) => format!("expected one of: {}", valid.join(", ")),
                _ => "not an accepted value".to_owned(),
            },
            _ => "not an accepted value".to_owned(),
        },
    };
    let value = match (secret, err.get(ContextKind::InvalidValue)) {
        (false, Some(ContextValue::String(v))) => format!(" {v:?}"),
        _ => String::new(),
    };
    match env {
        Some(env) => format!("invalid setting {env} (--{long}){value}: {reason}"),
        None => format!("invalid setting --{long}{value}: {reason}"),
    }
}

use std::error::Error as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn database_urls_are_parsed_and_redacted() {
        let cases = [
            ("postgres://u:secret@db:5432/k", Ok("postgres://u:***@db:5432/k")),
            ("postgresql://u@db/k", Ok("postgresql://u@db/k")),
            ("postgres://db/k?password=secret", Ok("postgres://db/k?***")),
            ("sqlite://data/k.db", Ok("sqlite://data/k.db")),
            ("sqlite:k.db", Ok("sqlite://k.db")),
            ("sqlite://", Err(())),
            ("sqlite::memory:", Err(())),
            ("mysql://x", Err(())),
            ("", Err(())),
        ];
        for (raw, want) in cases {
            let got = DatabaseUrl::parse(raw).map(|u| u.redacted()).map_err(|_| ());
            assert_eq!(got, want.map(str::to_owned), "{raw}");
        }
    }

    #[test]
    fn invalid_setting_names_env_var_and_flag() {
        let Err(ConfigError::Invalid(line)) = load_from(["kitsulan", "serve", "--listen", "nope"]) else {
            panic!("expected an invalid-setting error");
        };
        assert!(line.starts_with("invalid setting KITSULAN_LISTEN (--listen) \"nope\""), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn invalid_database_url_never_echoes_it() {
        let Err(ConfigError::Invalid(line)) =
            load_from(["kitsulan", "migrate", "--database-url", "mysql://root:hunter2@x/db"])
        else {
            panic!("expected an invalid-setting error");
        };
        assert!(line.starts_with("invalid setting DATABASE_URL (--database-url)"), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        let Err(ConfigError::Invalid(line)) = load_from(["kitsulan", "serve", "--db-max-connections", "0"])
        else {
            panic!("expected an invalid-setting error");
        };
        assert!(line.contains("KITSULAN_DB_MAX_CONNECTIONS"), "{line}");
    }
}
