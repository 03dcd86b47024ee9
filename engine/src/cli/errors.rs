//! How the CLI prints configuration problems.

use crate::config;
use crate::exit::EXIT_CONFIG;

/// Prints every configuration problem, one `error:` line each, and returns exit code 2.
pub fn config_errors(errors: Vec<config::ConfigError>) -> u8 {
    for e in &errors {
        eprintln!("error: {e}");
    }
    if errors.len() > 1 {
        eprintln!("{} problems in the pipeline file", errors.len());
    }
    EXIT_CONFIG
}

/// Prints one configuration problem and returns exit code 2.
pub fn config_error(e: config::ConfigError) -> u8 {
    eprintln!("error: {e}");
    EXIT_CONFIG
}
