//! Logging with `tracing`: readable lines for people on a terminal, one JSON object per line
//! for log collectors (`KITSULAN_LOG_FORMAT=json`). Logs go to standard error.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `filter` was validated when the settings were read.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    // The `turn` crate logs one error line per refused TURN request (anyone can send those), so
    // its lines stay off unless asked for by name. The relay logs (at debug) the refusals it
    // decides itself: expired, malformed or foreign-realm usernames. A wrong password is found by
    // the crate's integrity check, so it shows only with `turn` in the filter (`…,turn=error`).
    let filter = if filter.contains("turn") {
        EnvFilter::try_new(filter)?
    } else {
        EnvFilter::try_new(format!("{filter},turn=off"))?
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
