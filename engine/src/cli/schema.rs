//! `pipe schema STREAM [--json]`: the exact Arrow schema of a canonical stream (docs/design.md
//! §3), as a table or as JSON (arrow-rs serde form).

use pipe_plugin_sdk::schema::canonical_schema;

use crate::exit::Exit;

/// Prints the schema of `stream` (`messages` or `conversations`).
///
/// Errors: an unknown stream name (exit 2).
pub fn command(stream: &str, json: bool) -> Exit {
    let Some(schema) = canonical_schema(stream) else {
        eprintln!("error: unknown stream `{stream}` (the canonical streams are: messages, conversations)");
        return Exit::Config;
    };
    if json {
        println!("{}", serde_json::to_string_pretty(schema.as_ref()).expect("schema serializes"));
        return Exit::Ok;
    }
    println!("stream `{stream}` (canonical schema v1)");
    for f in schema.fields() {
        println!(
            "  {:<16} {:<40} {}",
            f.name(),
            f.data_type().to_string(),
            if f.is_nullable() { "nullable" } else { "not null" }
        );
    }
    Exit::Ok
}
