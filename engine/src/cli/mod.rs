//! The command line: one module per verb; [`dispatch`] runs the chosen one and returns how
//! the process exits ([`Exit`]).
//!
//! | verb | module |
//! |---|---|
//! | `pipe run FILE` | [`run`] |
//! | `pipe validate FILE [--check]` | [`validate`] |
//! | `pipe plugins` | [`plugins`] |
//! | `pipe plugin check LIB` | [`plugin`] |
//! | `pipe schema STREAM` | [`schema`] |
//! | `pipe state show\|reset FILE` | [`state`] |
//! | `pipe demo` | `demo` (with the `demo` feature) |
//!
//! Flags and help texts are in `args`; how configuration problems are printed in [`errors`].

mod args;
#[cfg(feature = "demo")]
pub mod demo;
pub mod errors;
pub mod plugin;
pub mod plugins;
pub mod run;
pub mod schema;
pub mod state;
pub mod validate;

pub use args::{Cli, Command, LogFormat, PluginAction, Shard, StateAction, init_logging};

use crate::exit::Exit;
use crate::registry::Registry;
use crate::runtime::RunOptions;

/// Runs the chosen verb.
pub async fn dispatch(cli: Cli) -> Exit {
    let registry = Registry::builtin();
    match cli.command {
        Command::Run {
            file,
            limit,
            full_refresh,
            report,
            shard,
            window,
            metrics_addr,
            metrics_linger,
            metrics_file,
        } => {
            let opts = RunOptions { limit, full_refresh, shard: shard.map(|s| (s.index, s.count)), window };
            let metrics = run::MetricsOptions {
                addr: metrics_addr,
                file: metrics_file,
                linger: std::time::Duration::from_secs_f64(metrics_linger.clamp(0.0, 3600.0)),
            };
            run::command(&file, &opts, report.as_deref(), &metrics, cli.quiet, &registry).await
        }
        Command::Validate { file, check, report } => {
            validate::command(&file, check, report.as_deref(), &registry).await
        }
        Command::Plugins { plugin_dir } => plugins::command(plugin_dir, &registry),
        Command::Plugin { action: PluginAction::Check { lib, config, cycles } } => {
            plugin::command(&lib, config.as_deref(), cycles, &registry).await
        }
        Command::Schema { stream, json } => schema::command(&stream, json),
        Command::State { action } => state::command(action, &registry).await,
        #[cfg(feature = "demo")]
        Command::Demo { out, chats, vendor } => demo::command(&out, chats, vendor.as_deref(), cli.quiet).await,
        // Without the `demo` feature the simulators are not compiled in.
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => {
            eprintln!("error: this pipe was built without the `demo` feature (cargo build --features demo)");
            Exit::Config
        }
    }
}
