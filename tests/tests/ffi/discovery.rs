//! Discovery of plugin libraries (docs/design.md §5) through the real `pipe` binary: the boundary
//! refuses strangers politely.

use pipe_tests::*;

const PANICKY_PIPELINE: &str = "name = \"disc\"\nplugin_dirs = [\"plugins\"]\n\n[source]\nplugin = \"panicky_source\"\n\n[[sinks]]\nplugin = \"panicky_sink\"\n\n[state]\npath = \"state\"\n";

fn builtin_pipeline(head: &str) -> String {
    format!(
        "name = \"disc\"\n{head}\n[source]\nplugin = \"giosg\"\norganization_id = \"org\"\ntoken = \"t\"\n\n[[sinks]]\nplugin = \"json\"\npath = \"out\"\n"
    )
}

#[tokio::test]
async fn a_library_with_another_abi_version_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    libraries::plugin_dir(dir.path(), "plugins", &["pipe_test_wrong_abi"]);
    std::fs::write(dir.path().join("p.toml"), builtin_pipeline("plugin_dirs = [\"plugins\"]")).unwrap();

    let out = run_pipe(dir.path(), &["validate", "p.toml"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got:\n{err}");
    let line = lines[0];
    assert!(line.contains("libpipe_test_wrong_abi.so"), "{line}");
    assert!(line.contains("ABI version 2") && line.contains("ABI version 1"), "both versions must be named: {line}");
    assert!(line.starts_with("error: p.toml:2: plugin_dirs:"), "{line}");

    // Through $PIPE_PLUGIN_PATH the same, for `run` too.
    std::fs::write(dir.path().join("q.toml"), builtin_pipeline("")).unwrap();
    let plugins = dir.path().join("plugins");
    let out = run_pipe(dir.path(), &["run", "q.toml"], &[("PIPE_PLUGIN_PATH", plugins.to_str().unwrap())]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("plugin ABI version 2, but this pipe supports plugin ABI version 1"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_shared_library_that_is_not_a_plugin_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    libraries::plugin_dir(dir.path(), "plugins", &["pipe_test_not_a_plugin", "pipe_test_panicky"]);
    // Not a `lib*.so`: never even opened.
    std::fs::write(dir.path().join("plugins/README.txt"), "not a library").unwrap();
    std::fs::write(dir.path().join("p.toml"), PANICKY_PIPELINE).unwrap();

    let out = run_pipe(dir.path(), &["run", "p.toml"], &[]).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("WARN")
            && err.contains(
                "libpipe_test_not_a_plugin.so: skipped, not a pipe plugin (no `pipe_plugin_abi_version` symbol)"
            ),
        "no warning about the non-plugin:\n{err}"
    );
    assert!(err.contains("numbers") && err.contains("30 rows"), "the plugin beside it did not run:\n{err}");
    // The dead letter crossed the boundary and was written by the engine.
    let dl = std::fs::read_to_string(dir.path().join(".pipe/dead_letter/disc/numbers.jsonl")).unwrap_or_default();
    assert!(dl.contains("test_dead_letter"), "dead letter missing: {dl:?}");
}

#[tokio::test]
async fn a_library_plugin_named_like_a_builtin_needs_allow_override() {
    let dir = tempfile::tempdir().unwrap();
    libraries::plugin_dir(dir.path(), "plugins", &["pipe_json"]);
    std::fs::write(dir.path().join("p.toml"), builtin_pipeline("plugin_dirs = [\"plugins\"]")).unwrap();
    let out = run_pipe(dir.path(), &["validate", "p.toml"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("provides plugin `json`, which is built in; add `allow_override = true`"),
        "{}",
        stderr(&out)
    );

    std::fs::write(dir.path().join("p.toml"), builtin_pipeline("plugin_dirs = [\"plugins\"]\nallow_override = true"))
        .unwrap();
    let out = run_pipe(dir.path(), &["validate", "p.toml"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("overrides the built-in"), "{}", stderr(&out));
}

#[tokio::test]
async fn a_missing_plugin_dir_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), builtin_pipeline("plugin_dirs = [\"nowhere\"]")).unwrap();
    let out = run_pipe(dir.path(), &["validate", "p.toml"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("p.toml:2: plugin_dirs: plugin directory nowhere:"), "{}", stderr(&out));
}

#[tokio::test]
async fn pipe_plugins_lists_libraries_of_pipe_plugin_path_with_origin_abi_and_build_info() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = libraries::plugin_dir(dir.path(), "plugins", &["pipe_test_panicky", "pipe_test_not_a_plugin"]);
    let out =
        run_pipe(dir.path(), &["plugins"], &[("PIPE_PLUGIN_PATH", &format!("{}:/no/such/dir", plugins.display()))])
            .await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    let lib = plugins.canonicalize().unwrap().join("libpipe_test_panicky.so");
    for (name, kind) in [("panicky_source", "source"), ("panicky_transform", "transform"), ("panicky_sink", "sink")] {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} not listed:\n{text}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cols[1..5], &[kind, "0.0.1", "1", lib.to_str().unwrap()], "{line}");
    }
    assert!(text.lines().any(|l| l.starts_with("giosg ") && l.contains("built-in")), "{text}");
    let build = text.lines().find(|l| l.starts_with(lib.to_str().unwrap())).expect("a build info line");
    assert!(
        build.contains("pipe-test-plugin-panicky 0.1.0") && build.contains("abi=1") && build.contains("rustc="),
        "{build}"
    );
    assert!(stderr(&out).contains("libpipe_test_not_a_plugin.so: skipped"), "{}", stderr(&out));
}
