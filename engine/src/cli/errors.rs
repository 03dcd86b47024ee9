//! How the CLI prints configuration problems.

use crate::config;
use crate::exit::Exit;

/// Prints every configuration problem, one `error:` line each, and returns [`Exit::Config`] (2).
pub fn config_errors(errors: Vec<config::ConfigError>) -> Exit {
    for e in &errors {
        eprintln!("error: {e}");
    }
    if errors.len() > 1 {
        eprintln!("{} problems in the pipeline file", errors.len());
    }
    Exit::Config
}

/// Prints one configuration problem and returns [`Exit::Config`] (2).
pub fn config_error(e: config::ConfigError) -> Exit {
    eprintln!("error: {e}");
    Exit::Config
}
