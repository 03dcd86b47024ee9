//! `pipe plugins [--plugin-dir DIR]...`: every plugin this `pipe` can use — built-ins, then the
//! libraries in `--plugin-dir` and `$PIPE_PLUGIN_PATH` — with kind, version, ABI, origin and
//! build info.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::env_var;
use crate::exit::Exit;
use crate::plugin_host::LoadedLibrary;
use crate::registry::Registry;

/// Lists the plugins. Exit 2 when a library was refused (foreign ABI version, failed
/// handshake); it is named on stderr and the others are still listed.
pub fn command(plugin_dirs: Vec<PathBuf>, registry: &Registry) -> Exit {
    let mut dirs = plugin_dirs;
    dirs.extend(crate::plugin_host::env_plugin_path(env_var("PIPE_PLUGIN_PATH").as_deref()));
    print_plugins(registry, &dirs)
}

/// `pipe plugins`: every built-in, then every plugin of the libraries in `dirs` (from
/// `--plugin-dir` and `$PIPE_PLUGIN_PATH`), with kind, version, ABI, origin and build info.
/// Exit 2 when a library was refused (it is named on stderr).
fn print_plugins(registry: &Registry, dirs: &[PathBuf]) -> Exit {
    let mut rows: Vec<[String; 6]> = registry
        .all()
        .iter()
        .map(|e| {
            let d = &e.descriptor;
            [
                d.name.into(),
                d.kind().as_str().into(),
                d.version.into(),
                "-".into(),
                "built-in".into(),
                d.description.into(),
            ]
        })
        .collect();
    let mut code = Exit::Ok;
    let mut libraries = Vec::new();
    for dir in dirs {
        // One directory at a time, so a refused library does not hide the others.
        match crate::plugin_host::discover(std::slice::from_ref(dir), false) {
            Ok(libs) => {
                for lib in libs {
                    if !libraries.iter().any(|k: &Arc<LoadedLibrary>| Arc::ptr_eq(k, &lib)) {
                        libraries.push(lib);
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = Exit::Config;
            }
        }
    }
    for lib in &libraries {
        for p in &lib.plugins {
            let mut origin = lib.path.display().to_string();
            if registry.all().iter().any(|e| e.descriptor.name == p.name) {
                origin.push_str(" (same name as a built-in: used only with allow_override = true)");
            }
            rows.push([
                p.name.into(),
                p.kind.as_str().into(),
                p.version.into(),
                lib.abi_version.to_string(),
                origin,
                p.description.into(),
            ]);
        }
    }
    let header = ["NAME", "KIND", "VERSION", "ABI", "ORIGIN", "DESCRIPTION"];
    let widths: Vec<usize> =
        (0..5).map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0)).collect();
    let line = |r: [&str; 6]| {
        let mut s = String::new();
        for i in 0..5 {
            s.push_str(&format!("{:<w$}  ", r[i], w = widths[i]));
        }
        s.push_str(r[5]);
        s
    };
    println!("{}", line(header));
    for r in &rows {
        println!("{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
    println!("\nbuilt-in: pipe {}", env!("CARGO_PKG_VERSION"));
    for lib in &libraries {
        println!("{}: {} {} ({})", lib.path.display(), lib.name, lib.version, lib.build_info);
    }
    code
}
