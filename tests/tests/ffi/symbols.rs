//! Both builds of a shipped plugin (docs/design.md §5, symbol collisions): linked into `pipe` next
//! to the other built-ins it exports nothing of the plugin ABI (so several built-ins cannot
//! collide), and built as a dynamic library it exports the two ABI symbols and nothing else of
//! ours or of Rust (so copies of std, tokio and arrow in different libraries cannot interpose
//! each other).
//!
//! rustc also exports the `#[no_mangle]` C API of dependencies from a cdylib
//! (rust-lang/rust#73958), and no stable flag or second version script hides them: with
//! object storage, crc-fast's `crc_fast_*` functions (a dependency of object_store's S3
//! checksums) are exported too. They are plain C functions of one crate, not copies of Rust
//! runtimes, and libraries are opened `RTLD_LOCAL`, so two plugins never bind to each other's.

use std::path::Path;
use std::process::Command;

use pipe_tests::{libraries, pipe_bin};

const ABI_SYMBOLS: [&str; 2] = ["pipe_plugin_abi_version", "pipe_plugin_init_v1"];

/// Symbol names `nm` lists for `path` with `args`.
fn nm(args: &[&str], path: &Path) -> Vec<String> {
    let out = Command::new("nm")
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `nm` ({e}); install binutils to check exported symbols"));
    assert!(out.status.success(), "nm {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

/// Dependencies' C APIs rustc exports from every cdylib that links them (see the module docs).
const DEPENDENCY_C_APIS: [&str; 1] = ["crc_fast_"];

#[test]
fn each_plugin_library_exports_the_two_abi_symbols_and_nothing_of_rust_or_ours() {
    for stem in ["pipe_giosg", "pipe_parquet", "pipe_json", "pipe_stdout", "pipe_test_panicky"] {
        let exported = nm(&["-D", "--defined-only"], &libraries::library(stem));
        let mut ours: Vec<&String> =
            exported.iter().filter(|s| !DEPENDENCY_C_APIS.iter().any(|p| s.starts_with(p))).collect();
        ours.sort();
        assert_eq!(
            ours,
            ABI_SYMBOLS.iter().collect::<Vec<_>>(),
            "lib{stem}.so exports other symbols than the plugin ABI"
        );
    }
}

#[test]
fn the_pipe_binary_links_every_builtin_without_abi_symbols() {
    let symbols = nm(&[], &pipe_bin());
    for s in ABI_SYMBOLS {
        assert!(
            !symbols.iter().any(|x| x == s),
            "`pipe` contains `{s}`: a built-in plugin crate expands declare_plugin!"
        );
    }
    // And it does link the built-ins.
    let out = Command::new(pipe_bin()).arg("plugins").env_remove("PIPE_PLUGIN_PATH").output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    for name in ["giosg", "parquet", "json", "stdout"] {
        assert!(
            listing.lines().any(|l| l.split_whitespace().next() == Some(name) && l.contains("built-in")),
            "`{name}` is not built into pipe:\n{listing}"
        );
    }
}
