//! `pipe plugins [--plugin-dir DIR]...`: every plugin this `pipe` can use — built-ins, then the
//! libraries in `--plugin-dir` and `$PIPE_PLUGIN_PATH` — with kind, version, ABI, origin and
//! build info.

use std::path::PathBuf;

use crate::config::env_var;
use crate::exit::Exit;
use crate::registry::Registry;

/// Lists the plugins. Exit 2 when a library was refused (foreign ABI version, failed
/// handshake); it is named on stderr and the others are still listed.
pub fn command(plugin_dirs: Vec<PathBuf>, registry: &Registry) -> Exit {
    let mut dirs = plugin_dirs;
    dirs.extend(crate::plugin_host::env_plugin_path(env_var("PIPE_PLUGIN_PATH").as_deref()));
    // The listing itself lives with the registry and answers 0 or 2.
    match crate::registry::print_plugins(registry, &dirs) {
        0 => Exit::Ok,
        _ => Exit::Config,
    }
}
