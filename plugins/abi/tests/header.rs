//! `pipe_plugin.h` matches the Rust declarations: a C file generated here static-asserts every
//! struct's size and every field's offset as Rust computes them, and every constant's value,
//! then a C compiler (`$CC`, else `cc`, else `gcc`) checks it. The header's `#define`s and
//! `typedef struct`s are also listed from its text, so nothing can be added on one side only.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

use pipe_plugin_abi::*;

/// (C struct name, size, [(field, offset)]).
type Layout = (&'static str, usize, Vec<(&'static str, usize)>);

macro_rules! layout {
    ($c:literal, $t:ty { $($f:ident),* $(,)? }) => {
        ($c, size_of::<$t>(), vec![$((stringify!($f), offset_of!($t, $f))),*])
    };
}

fn layouts() -> Vec<Layout> {
    vec![
        layout!(
            "struct ArrowSchema",
            ArrowSchema { format, name, metadata, flags, n_children, children, dictionary, release, private_data }
        ),
        layout!(
            "struct ArrowArray",
            ArrowArray {
                length,
                null_count,
                offset,
                n_buffers,
                n_children,
                buffers,
                children,
                dictionary,
                release,
                private_data
            }
        ),
        layout!(
            "struct ArrowArrayStream",
            ArrowArrayStream { get_schema, get_next, get_last_error, release, private_data }
        ),
        layout!("PipeStr", PipeStr { ptr, len }),
        layout!("PipeError", PipeError { struct_size, code, message, config_path }),
        layout!(
            "PipeHostApiV1",
            PipeHostApiV1 { struct_size, abi_version, host_version, log, max_log_level, worker_threads }
        ),
        layout!(
            "PipeLibraryV1",
            PipeLibraryV1 {
                abi_version,
                struct_size,
                build_info,
                library_name,
                library_version,
                n_plugins,
                plugins,
                free_string
            }
        ),
        layout!(
            "PipePluginDescV1",
            PipePluginDescV1 {
                struct_size,
                kind,
                name,
                version,
                description,
                config_schema_json,
                check_config,
                source,
                transform,
                sink
            }
        ),
        layout!("PipeSourceOpenArgsV1", PipeSourceOpenArgsV1 { struct_size, pipeline, config_json, state_json, limit }),
        layout!("PipeStreamV1", PipeStreamV1 { name, schema }),
        layout!(
            "PipeSinkOpenArgsV1",
            PipeSinkOpenArgsV1 { struct_size, pipeline, config_json, run_id, streams, n_streams }
        ),
        layout!("PipeTransformOpenArgsV1", PipeTransformOpenArgsV1 { struct_size, pipeline, config_json }),
        layout!("PipeEventV1", PipeEventV1 { struct_size, kind, stream, json, array, schema }),
        layout!(
            "PipeSourceCountersV1",
            PipeSourceCountersV1 { struct_size, requests, retries, conversations, messages, throttled_until_ms }
        ),
        layout!("PipeSinkStatsV1", PipeSinkStatsV1 { struct_size, files, bytes, rows }),
        layout!(
            "PipeSourceVTableV1",
            PipeSourceVTableV1 { struct_size, open, stream_count, stream, next_event, counters, cancel, close }
        ),
        layout!(
            "PipeTransformVTableV1",
            PipeTransformVTableV1 { struct_size, open, output_stream, transform, flush, next_output, cancel, close }
        ),
        layout!("PipeSinkVTableV1", PipeSinkVTableV1 { struct_size, open, write, commit, abort, stats, cancel, close }),
    ]
}

fn constants() -> Vec<(&'static str, i64)> {
    vec![
        ("PIPE_ABI_VERSION", ABI_VERSION.into()),
        ("PIPE_OK", PIPE_OK.into()),
        ("PIPE_ERROR", PIPE_ERROR.into()),
        ("PIPE_ERROR_CONFIG", PIPE_ERROR_CONFIG.into()),
        ("PIPE_ERROR_CANCELLED", PIPE_ERROR_CANCELLED.into()),
        ("PIPE_ERROR_PANIC", PIPE_ERROR_PANIC.into()),
        ("PIPE_ERROR_RETRYABLE", PIPE_ERROR_RETRYABLE.into()),
        ("PIPE_ERROR_ABI", PIPE_ERROR_ABI.into()),
        ("PIPE_KIND_SOURCE", PIPE_KIND_SOURCE.into()),
        ("PIPE_KIND_TRANSFORM", PIPE_KIND_TRANSFORM.into()),
        ("PIPE_KIND_SINK", PIPE_KIND_SINK.into()),
        ("PIPE_EVENT_NONE", PIPE_EVENT_NONE.into()),
        ("PIPE_EVENT_BATCH", PIPE_EVENT_BATCH.into()),
        ("PIPE_EVENT_DEAD_LETTER", PIPE_EVENT_DEAD_LETTER.into()),
        ("PIPE_EVENT_CHECKPOINT", PIPE_EVENT_CHECKPOINT.into()),
        ("PIPE_EVENT_END", PIPE_EVENT_END.into()),
        ("PIPE_LOG_ERROR", PIPE_LOG_ERROR.into()),
        ("PIPE_LOG_WARN", PIPE_LOG_WARN.into()),
        ("PIPE_LOG_INFO", PIPE_LOG_INFO.into()),
        ("PIPE_LOG_DEBUG", PIPE_LOG_DEBUG.into()),
        ("PIPE_LOG_TRACE", PIPE_LOG_TRACE.into()),
    ]
}

fn header_path() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/pipe_plugin.h"))
}

fn header() -> String {
    std::fs::read_to_string(header_path()).expect("pipe_plugin.h is readable")
}

#[test]
fn header_defines_exactly_the_rust_constants_and_symbols() {
    let text = header();
    let mut numeric = BTreeSet::new();
    let mut strings = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#define") {
            continue;
        }
        let (Some(name), Some(value)) = (words.next(), words.next()) else { continue };
        if !name.starts_with("PIPE_") || name == "PIPE_PLUGIN_H" {
            continue;
        }
        if value.starts_with('"') {
            strings.push((name.to_string(), value.trim_matches('"').to_string()));
        } else {
            numeric.insert(name.to_string());
        }
    }
    let rust: BTreeSet<String> = constants().iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(numeric, rust, "numeric #defines in pipe_plugin.h differ from the Rust constants");
    strings.sort();
    assert_eq!(
        strings,
        vec![
            ("PIPE_SYMBOL_ABI_VERSION".to_string(), SYMBOL_ABI_VERSION.to_string()),
            ("PIPE_SYMBOL_INIT_V1".to_string(), SYMBOL_INIT_V1.to_string()),
        ]
    );
}

#[test]
fn header_declares_exactly_the_rust_structs() {
    let text = header();
    let declared: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("typedef struct ").or_else(|| l.strip_prefix("struct ")))
        .filter(|rest| rest.trim_end().ends_with('{'))
        .map(|rest| rest.trim_end_matches('{').trim().to_string())
        .collect();
    let rust: BTreeSet<String> =
        layouts().iter().map(|(c, _, _)| c.trim_start_matches("struct ").to_string()).collect();
    assert_eq!(declared, rust, "struct definitions in pipe_plugin.h differ from the Rust ones");
}

#[test]
fn header_layout_matches_rust_when_compiled() {
    let mut c = String::from("#include <stddef.h>\n#include \"pipe_plugin.h\"\n");
    for (name, size, fields) in layouts() {
        writeln!(c, "_Static_assert(sizeof({name}) == {size}, \"sizeof({name}) differs from Rust ({size})\");")
            .unwrap();
        for (field, offset) in fields {
            writeln!(
                c,
                "_Static_assert(offsetof({name}, {field}) == {offset}, \"offset of {name}.{field} differs from Rust ({offset})\");"
            )
            .unwrap();
        }
    }
    for (name, value) in constants() {
        writeln!(c, "_Static_assert({name} == {value}, \"{name} differs from Rust ({value})\");").unwrap();
    }
    // The two exported functions have the types the Rust side calls them with.
    writeln!(c, "static uint32_t (*const check_abi)(void) = pipe_plugin_abi_version;").unwrap();
    writeln!(
        c,
        "static int32_t (*const check_init)(const PipeHostApiV1*, const PipeLibraryV1**, PipeError*) = pipe_plugin_init_v1;"
    )
    .unwrap();
    writeln!(c, "int main(void) {{ return check_abi == 0 || check_init == 0; }}").unwrap();

    let dir = std::env::temp_dir().join(format!("pipe-abi-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("check.c");
    std::fs::write(&src, &c).unwrap();

    let candidates: Vec<String> = std::env::var("CC").ok().into_iter().chain(["cc".into(), "gcc".into()]).collect();
    let include = header_path().parent().unwrap();
    for cc in &candidates {
        let out = Command::new(cc)
            .args(["-std=c11", "-Wall", "-Werror", "-fsyntax-only", "-I"])
            .arg(include)
            .arg(&src)
            .output();
        match out {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "pipe_plugin.h does not match the Rust ABI ({cc}):\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let _ = std::fs::remove_dir_all(&dir);
                return;
            }
            Err(_) => continue,
        }
    }
    panic!("no C compiler found (tried {candidates:?}); install gcc to check pipe_plugin.h against the Rust ABI");
}
