//! `kitsulan`: read the settings, then run the chosen subcommand.

use std::process::ExitCode;

use kitsulan_server::config::{self, ConfigError};

fn main() -> ExitCode {
    let cli = match config::load() {
        Ok(cli) => cli,
        Err(ConfigError::Clap(e)) => e.exit(),
        Err(ConfigError::Invalid(line)) => {
            eprintln!("kitsulan: {line}");
            return ExitCode::from(2);
        }
    };
    kitsulan_server::run(cli)
}
