//! The command line: one module per verb; `dispatch` runs the chosen one and returns the
//! process exit code (`crate::exit`).

mod args;
#[cfg(feature = "demo")]
pub mod demo;
pub mod errors;
pub mod plugin;
pub mod run;
pub mod state;

pub use args::{Cli, Command, LogFormat, PluginAction, Shard, StateAction, init_logging};

use pipe_plugin_sdk::schema::canonical_schema;

use crate::config::{self, env_var};
use crate::exit::{EXIT_CONFIG, EXIT_OK};
use crate::registry::Registry;
use crate::runtime::RunOptions;
use errors::config_errors;
use run::run_pipeline;

/// Runs the chosen subcommand.
pub async fn dispatch(cli: Cli) -> u8 {
    let registry = Registry::builtin();
    match cli.command {
        Command::Run { file, limit, full_refresh, report, shard, window } => {
            match config::load_file_all(&file, &registry, &env_var) {
                Ok(p) => {
                    run_pipeline(
                        &p,
                        &RunOptions { limit, full_refresh, shard: shard.map(|s| (s.index, s.count)), window },
                        cli.quiet,
                        false,
                        report.as_deref(),
                    )
                    .await
                }
                Err(errors) => config_errors(errors),
            }
        }
        Command::Validate { file, check } => match config::load_file_all(&file, &registry, &env_var) {
            Ok(p) => {
                println!(
                    "{}: ok — pipeline `{}`: source `{}`, {} transform(s), sink(s): {}",
                    file.display(),
                    p.name,
                    p.source.descriptor.name,
                    p.transforms.len(),
                    p.sinks.iter().map(|s| s.descriptor.name).collect::<Vec<_>>().join(", ")
                );
                plugin::describe_plugins(&p);
                if check { plugin::probe_source(&p).await } else { EXIT_OK }
            }
            Err(errors) => config_errors(errors),
        },
        Command::Plugins { plugin_dir } => {
            let mut dirs = plugin_dir;
            dirs.extend(crate::plugin_host::env_plugin_path(env_var("PIPE_PLUGIN_PATH").as_deref()));
            crate::registry::print_plugins(&registry, &dirs)
        }
        Command::Plugin { action: PluginAction::Check { lib, config, cycles } } => {
            plugin::run(&lib, config.as_deref(), cycles, &registry).await
        }
        Command::Schema { stream, json } => match canonical_schema(&stream) {
            Some(schema) if json => {
                println!("{}", serde_json::to_string_pretty(schema.as_ref()).expect("schema serializes"));
                EXIT_OK
            }
            Some(schema) => {
                println!("stream `{stream}` (canonical schema v1)");
                for f in schema.fields() {
                    println!(
                        "  {:<16} {:<40} {}",
                        f.name(),
                        f.data_type().to_string(),
                        if f.is_nullable() { "nullable" } else { "not null" }
                    );
                }
                EXIT_OK
            }
            None => {
                eprintln!("error: unknown stream `{stream}` (the canonical streams are: messages, conversations)");
                EXIT_CONFIG
            }
        },
        Command::State { action } => state::state_command(action, &registry).await,
        Command::Demo { out, chats, vendor } => demo_command(&out, chats, vendor.as_deref(), cli.quiet).await,
    }
}

#[cfg(feature = "demo")]
async fn demo_command(out: &std::path::Path, chats: usize, vendor: Option<&str>, quiet: bool) -> u8 {
    demo::run(out, chats, vendor, quiet).await
}

/// Without the `demo` feature the simulators are not compiled in.
#[cfg(not(feature = "demo"))]
async fn demo_command(_out: &std::path::Path, _chats: usize, _vendor: Option<&str>, _quiet: bool) -> u8 {
    eprintln!("error: this pipe was built without the `demo` feature (cargo build --features demo)");
    EXIT_CONFIG
}
