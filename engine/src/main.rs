//! `pipe`: export chat conversations from customer-chat vendors into analytics storage.
//!
//! A thin shell over the `pipe_engine` library: parse the command line, set up logging, run the
//! verb on a tokio runtime and exit with its code (`pipe_engine::exit::Exit`).

use std::process::ExitCode;

use clap::Parser;
use pipe_engine::cli::{self, Cli, Command};
use pipe_engine::exit::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(&cli);
    if matches!(cli.command, Command::Plugin { .. }) {
        // Before any thread exists: the memory check needs an allocator without thread caches.
        cli::plugin::without_thread_caches();
    }
    pipe_engine::allocator::return_large_blocks_to_the_system();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failed.into();
        }
    };
    let exit = runtime.block_on(cli::dispatch(cli));
    // Don't wait for stray blocking tasks (a hung request) once we have an answer.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    exit.into()
}
