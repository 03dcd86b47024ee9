//! Property tests: arbitrary vendor JSON, pipeline files and ciphertexts never panic, and every
//! time that reaches a row is one a reader can format and no later than now + 24 h
//! (`pipe_plugin_sdk::time::checked`).
//!
//! The JSON is shaped like the vendors': objects whose keys are mostly the vendors' own field
//! names, with values of every JSON kind, including the times that broke runs before (a
//! chat in 2099, `1e30`, `i64::MAX`, a year beyond chrono's range). 2,000 cases per property
//! by default; `PROPTEST_CASES=100000` for a long run (`benches/properties.sh`).

use std::collections::BTreeMap;

use pipe_plugin_sdk::schema::{ConversationRow, MessageRow};
use pipe_plugin_sdk::time::{MAX_FUTURE_US, now_micros};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

/// 2,000 cases unless `PROPTEST_CASES` says otherwise; failures are printed, never written
/// into the source tree.
fn config() -> Config {
    let mut c = Config { failure_persistence: None, ..Config::default() };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 2_000;
    }
    c
}

/// Field names the three vendors use (giosg, Alli REST and GraphQL, Aimylogic history and
/// webhook), so generated objects reach deep into the mappings.
const VENDOR_KEYS: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "ended_at",
    "is_ended",
    "is_waiting",
    "message",
    "type",
    "sender_type",
    "sender_id",
    "sender_name",
    "encrypted_message",
    "encrypted_symmetric_key",
    "message_count",
    "member_type",
    "member_id",
    "member_name",
    "key",
    "value",
    "name",
    "room_id",
    "attachments",
    "sensitive_data_purged_at",
    "timestamp",
    "lastChatTime",
    "createdAt",
    "modifiedAt",
    "chats",
    "sender",
    "__typename",
    "user",
    "userId",
    "firstName",
    "lastName",
    "state",
    "categories",
    "variables",
    "llmApp",
    "campaign",
    "title",
    "isEnd",
    "chatCount",
    "questionId",
    "query",
    "request",
    "response",
    "replies",
    "answer",
    "data",
    "clientId",
    "newSessionStarted",
    "endSession",
    "text",
    "buttons",
    "agent",
];

/// Times and numbers that once wrapped, saturated or panicked somewhere.
fn hostile_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from("2099-01-01T00:00:00Z")),
        Just(Value::from("+262143-12-31T23:59:59Z")),
        Just(Value::from("2024-05-14T09:12:03.517")),
        Just(Value::from("2023-06-14T10:49:34.406Z")),
        Just(Value::from("1715677923517")),
        Just(Value::from(1e30)),
        Just(Value::from(-1e300)),
        Just(Value::from(i64::MAX)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(1_715_677_923_517_i64)),
        Just(Value::from("")),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        any::<String>().prop_map(Value::from),
        hostile_leaf(),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => proptest::sample::select(VENDOR_KEYS).prop_map(str::to_string), 1 => any::<String>()]
}

/// Any JSON, vendor-shaped: nested up to 3 levels.
fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 48, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A vendor object: mostly vendor keys, any values.
fn record() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(key(), json(), 0..12)
        .prop_map(|m: BTreeMap<String, Value>| Value::Object(m.into_iter().collect()))
}

fn records(max: usize) -> impl Strategy<Value = Vec<Value>> {
    proptest::collection::vec(record(), 0..max)
}

/// Every time in a row can be formatted and lies no later than now + 24 h.
fn assert_times_checked(messages: &[MessageRow], conversation: Option<&ConversationRow>) {
    let ceiling = now_micros() + MAX_FUTURE_US;
    let ok = |t: i64| chrono::DateTime::from_timestamp_micros(t).is_some() && t <= ceiling;
    for m in messages {
        assert!(ok(m.sent_at), "message {} sent_at {}", m.message_id, m.sent_at);
    }
    if let Some(c) = conversation {
        for t in [c.created_at, c.updated_at, c.ended_at].into_iter().flatten() {
            assert!(ok(t), "conversation {} time {t}", c.conversation_id);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn giosg_mapping_never_panics_and_checks_every_time(
        chat in record(), messages in records(8), memberships in records(4), tags in records(3), variables in records(3)
    ) {
        use pipe_plugin_giosg::mapping::{ChatBundle, chat_mark, map_chat};
        let _ = chat_mark(&chat);
        let bundle = ChatBundle { chat, messages, memberships, tags, variables };
        let mapped = map_chat("org", &bundle, now_micros());
        assert_times_checked(&mapped.messages, mapped.conversation.as_ref());
    }

    #[test]
    fn alli_mapping_never_panics_and_checks_every_time(
        conversation in record(), chats in records(8), total in proptest::option::of(any::<u64>()), graphql in any::<bool>()
    ) {
        use pipe_plugin_alli::mapping::{Bundle, listing_time, map_conversation};
        use pipe_plugin_alli::Api;
        let _ = listing_time(&conversation);
        let api = if graphql { Api::Graphql } else { Api::Rest };
        let bundle = Bundle { api, conversation, chats, total, incomplete: None };
        let mapped = map_conversation("acc", &bundle, now_micros());
        assert_times_checked(&mapped.messages, mapped.conversation.as_ref());
    }

    #[test]
    fn aimylogic_mapping_never_panics_and_checks_every_time(items in records(10)) {
        use pipe_plugin_aimylogic::mapping::{MapCtx, item_position, map_history};
        let zone = pipe_plugin_sdk::time::Zone::named("Europe/Moscow").unwrap();
        let ctx = MapCtx { account_id: "acc", client_id: "client", token: "tok", extracted_at: now_micros(), zone };
        for item in &items {
            let _ = item_position(item, zone);
        }
        let mapped = map_history(&ctx, &items);
        assert_times_checked(&mapped.messages, mapped.conversation.as_ref());
    }

    #[test]
    fn pipeline_loader_never_panics(text in pipeline_text()) {
        let registry = pipe_engine::registry::Registry::builtin();
        let _ = pipe_engine::config::load_str_all(&text, "p.toml", "p", &registry, &|_| Some("x".into()));
    }

    #[test]
    fn ciphertext_parser_never_panics(text in ciphertext(), key_json in proptest::collection::vec(any::<u8>(), 0..200)) {
        use pipe_plugin_decrypt::scheme::{decrypt_message, parse_key_json};
        let _ = parse_key_json(&key_json);
        let key = parse_key_json(VALID_KEY.as_bytes()).expect("the fixed key parses");
        let _ = decrypt_message(&key, &text);
    }
}

/// A Keyczar AES key JSON (giosg.md §5.2) with a fixed 32-byte key.
const VALID_KEY: &str = r#"{"aesKeyString": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "hmacKey": {"hmacKeyString": "AAECAwQFBgcICQoLDA0ODxAREhM", "size": 256}, "mode": "CBC", "size": 256}"#;

/// Ciphertexts: any string, or base64 of any bytes (so the parser gets past decoding), with
/// Keyczar's version byte in front half the time.
fn ciphertext() -> impl Strategy<Value = String> {
    use base64::Engine as _;
    prop_oneof![
        any::<String>(),
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..160)).prop_map(|(versioned, mut bytes)| {
            if versioned {
                bytes.insert(0, 0);
            }
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
        }),
    ]
}

/// Pipeline files: any string, or lines built from real keys and odd values.
fn pipeline_text() -> impl Strategy<Value = String> {
    const LINES: &[&str] = &[
        "name = \"p\"",
        "[source]",
        "plugin = \"giosg\"",
        "plugin = \"alli\"",
        "plugin = \"aimylogic\"",
        "base_url = \"http://127.0.0.1:1\"",
        "token = \"${T}\"",
        "organization_id = \"o\"",
        "page_size = 1e308",
        "page_size = -1",
        "requests_per_second = 1e10",
        "lookback_hours = 4294967295",
        "commit_interval_seconds = 18446744073709551615",
        "concurrency = 0",
        "[[sinks]]",
        "plugin = \"parquet\"",
        "path = \"out\"",
        "partition_by = [\"date\", \"date\"]",
        "max_file_rows = 0",
        "[[transforms]]",
        "plugin = \"tags\"",
        "[[source.accounts]]",
        "id = \"\"",
        "[state]",
        "path = \"s3://\"",
        "[dead_letter]",
        "path = \"\"",
    ];
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(proptest::sample::select(LINES), 0..24).prop_map(|l| l.join("\n")),
    ]
}
