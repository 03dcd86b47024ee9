//! The command line: verbs, flags and their help texts (clap), and logging set-up.

// The doc comments below are `--help` text: `<vendor>` there is a placeholder for the reader, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::runtime::plan::Window;

/// Export every chat conversation and message from a customer-chat vendor's API, normalized to
/// one schema, into Parquet or JSON Lines.
///
/// Start with `pipe demo`: it runs simulated giosg, Alli and Aimylogic accounts and writes
/// Parquet to ./out/demo/<vendor>/. Then copy pipelines/giosg.toml (or alli.toml,
/// aimylogic.toml), set the variables it names, and `pipe run` it.
#[derive(Parser)]
#[command(name = "pipe", version, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr: `text` for people, `json` for log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// More log detail (-v: debug, including every retry and its reason; -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr; no progress display.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a pipeline: pull from the source, apply the transforms, write every sink.
    ///
    /// Example: `GIOSG_ORG_ID=... GIOSG_API_TOKEN=... pipe run pipelines/giosg.toml`
    Run {
        /// The pipeline file (TOML).
        file: PathBuf,
        /// Stop after N conversations: a quick look at a new account.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Ignore the saved state and export everything again (the state is replaced).
        #[arg(long)]
        full_refresh: bool,
        /// Also write the run report as JSON to FILE (rows, files, requests, retries, dead
        /// letters, completeness, state before and after).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Run only shard K of N (0-based) of the pipeline's [[source.accounts]]: the accounts
        /// whose stable hash of `id` modulo N is K. N tasks with K = 0..N-1 (e.g. a Kubernetes
        /// indexed Job) together cover every account exactly once.
        #[arg(long, value_name = "K/N")]
        shard: Option<Shard>,
        /// Export only conversations created in [FROM, TO) (RFC 3339 instants or YYYY-MM-DD
        /// dates, UTC), with the window's own state: split a long backfill over several tasks.
        /// The source must have `start` and `end` keys (giosg does).
        #[arg(long, value_name = "FROM..TO")]
        window: Option<Window>,
        /// Serve Prometheus metrics on HOST:PORT at /metrics while the run lasts (a webhook
        /// service, a long backfill). Binds exactly there: use 127.0.0.1 unless a scraper on
        /// another host must reach it. Port 0 picks a free port (logged).
        #[arg(long, value_name = "HOST:PORT")]
        metrics_addr: Option<String>,
        /// With --metrics-addr: after the run, keep serving /metrics until one scrape has read
        /// the final values, for at most SECONDS (a batch run scraped by Prometheus).
        #[arg(long, value_name = "SECONDS", default_value_t = 0.0, requires = "metrics_addr")]
        metrics_linger: f64,
        /// Write the final metrics to FILE at the end of the run, in the Prometheus text format,
        /// replaced atomically (for node_exporter's textfile collector: a `*.prom` file in its
        /// directory).
        #[arg(long, value_name = "FILE")]
        metrics_file: Option<PathBuf>,
    },
    /// Check a pipeline file without running it: TOML, plugin names, every plugin's keys and
    /// types, `${VAR}` references. No network.
    Validate {
        /// The pipeline file (TOML).
        file: PathBuf,
        /// Also check the source against the live account (network, read-only): for the
        /// built-in sources a contract report, one line per assumption about the vendor's API
        /// (confirmed, absent, different), exit 1 when a required one fails; for a library
        /// source its first authenticated request. Nothing is written or committed.
        #[arg(long)]
        check: bool,
        /// With `--check`: also write the contract report as JSON to FILE.
        #[arg(long, value_name = "FILE", requires = "check")]
        report: Option<PathBuf>,
    },
    /// List the plugins: built-ins and the libraries found in `--plugin-dir` and
    /// `$PIPE_PLUGIN_PATH`, with kind, version, ABI, origin and build info.
    Plugins {
        /// Also look for plugin libraries (`lib*.so`) in DIR (repeatable).
        #[arg(long = "plugin-dir", value_name = "DIR")]
        plugin_dir: Vec<PathBuf>,
    },
    /// Work with one plugin library: `pipe plugin check LIB` runs the conformance kit.
    Plugin {
        #[command(subcommand)]
        action: PluginAction,
    },
    /// Print the exact Arrow schema of a canonical stream (`messages` or `conversations`).
    Schema {
        /// `messages` or `conversations`.
        stream: String,
        /// Print it as JSON (arrow-rs serde form) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show or reset the saved state (the last committed checkpoint) of a pipeline.
    State {
        #[command(subcommand)]
        action: StateAction,
    },
    /// Start simulated vendor accounts on 127.0.0.1 and export each with its demo pipeline, so
    /// you see real output without an account. Writes Parquet to ./out/demo/<vendor>/.
    Demo {
        /// Where the demo writes its Parquet datasets, one directory per vendor
        /// (`<out>/giosg/messages/...`).
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// How many conversations each simulated account has.
        #[arg(long, default_value_t = 300)]
        chats: usize,
        /// Run only this vendor's demo (default: every vendor).
        #[arg(long)]
        vendor: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum PluginAction {
    /// Run the conformance kit against a plugin library, a built-in (by name) or a vendor spec
    /// of the `rest` source (a `.toml` file): handshake and ABI, descriptor, structured config errors, declared vs emitted schema, checkpoint
    /// resume, cancel, panics, memory growth per open/close cycle. One line per check; exit 1
    /// when one fails.
    Check {
        /// A plugin library file (`./target/release/libacme.so`), a built-in plugin's name, or a
        /// vendor spec (`specs/acme.toml`; its `[source]` keys, e.g. `base_url`, in `--config`).
        lib: String,
        /// Working configs: a pipeline file, or a TOML file of tables named after the plugins
        /// (`[acme] base_url = "..."`), or a single plugin's keys. Without it, checks that must
        /// open the plugin are skipped. Sinks write where their config says: use a scratch path.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Open/close cycles measured by the memory check (default 200).
        #[arg(long, value_name = "N")]
        cycles: Option<usize>,
    },
}

#[derive(Subcommand)]
pub enum StateAction {
    /// Print the state file of a pipeline.
    Show { file: PathBuf },
    /// Delete the state of a pipeline: the next run starts from scratch.
    Reset { file: PathBuf },
}

/// Sets up logging on stderr for `cli`'s verbosity and format (`PIPE_LOG` overrides the level).
pub fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("PIPE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour_on_stderr(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR")));
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.compact().init(),
    }
}

/// Colour codes only for a person at a terminal: never when stderr is a file or a pipe (a
/// scheduler's log collector) and never when `NO_COLOR` is set to a non-empty value
/// (no-color.org).
fn colour_on_stderr(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// `--shard K/N`.
#[derive(Clone, Copy, Debug)]
pub struct Shard {
    /// K, 0-based.
    pub index: u32,
    /// N.
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s.split_once('/').ok_or("expected K/N, e.g. 0/3")?;
        let index: u32 = k.trim().parse().map_err(|_| format!("`{k}` is not a shard number"))?;
        let count: u32 = n.trim().parse().map_err(|_| format!("`{n}` is not a shard count"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: K must be in 0..N and N at least 1"));
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::colour_on_stderr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_on_stderr(true, None));
        assert!(colour_on_stderr(true, Some("".into())));
        assert!(!colour_on_stderr(true, Some("1".into())));
        assert!(!colour_on_stderr(false, None));
    }
}
