//! `pipe state show|reset FILE`: print or delete the saved state of a pipeline (one document
//! per account under `[[source.accounts]]`). A reset takes the run lock of local state first
//! (`crate::state::lock`): it refuses, exit 1, while a run of the pipeline is in progress.

use crate::cli::args::StateAction;
use crate::cli::errors::config_error;
use crate::config::{self, env_var};
use crate::exit::Exit;
use crate::registry::Registry;
use crate::state;

/// Runs `pipe state show` or `pipe state reset`.
pub async fn command(action: StateAction, registry: &Registry) -> Exit {
    let (file, reset) = match &action {
        StateAction::Show { file } => (file, false),
        StateAction::Reset { file } => (file, true),
    };
    // The state needs no secret: unset variables are empty and plugins do not check their tables.
    let p = match config::load_file_for_state(file, registry, &|name| Some(env_var(name).unwrap_or_default())) {
        Ok(p) => p,
        Err(e) => return config_error(e),
    };
    let store = match state::StateStore::open(&p.state_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
    };
    let accounts: Vec<Option<String>> = match p.accounts.as_ref().map(|a| &a.list) {
        None => vec![None],
        Some(list) => list.iter().map(|a| Some(a.id.clone())).collect(),
    };
    // A reset under a live run would be undone by its next commit: take its lock first.
    let _lock = match (&store, reset) {
        (state::StateStore::Local(dir), true) => {
            let keys: Vec<String> = accounts.iter().map(|a| state::key(&p.name, a.as_deref())).collect();
            match state::lock::RunLock::acquire(dir, &keys, "state-reset") {
                Ok(lock) => Some(lock),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Exit::Failed;
                }
            }
        }
        _ => None,
    };
    let mut code = Exit::Ok;
    for account in accounts {
        let key = state::key(&p.name, account.as_deref());
        let at = store.describe(&key);
        if reset {
            match store.remove(&key).await {
                Ok(true) => println!("removed {at}"),
                Ok(false) => println!("no state at {at}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    code = Exit::Failed;
                }
            }
            continue;
        }
        match store.load(&key).await {
            Ok(Some((doc, _))) => println!("{}", serde_json::to_string_pretty(&doc).expect("JSON serializes")),
            Ok(None) => println!("no state yet at {at} (the next run starts from scratch)"),
            Err(e) => {
                eprintln!("error: {e}");
                code = Exit::Failed;
            }
        }
    }
    code
}
