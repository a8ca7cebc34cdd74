//! Where the database is: a SQLite file or a PostgreSQL URL, parsed from `DATABASE_URL` (the
//! server's settings use this type) and never shown with its password.

use std::path::PathBuf;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
