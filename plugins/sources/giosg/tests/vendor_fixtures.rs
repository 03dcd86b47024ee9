//! The giosg client and mapping against the literal example payloads of docs/vendors/giosg.md §6,
//! so our simulator is not the only thing our client agrees with.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use pipe_plugin_giosg::mapping::{ATTR_ENCRYPTED_KEY, ChatBundle, map_chat};
use serde_json::Value;

const ORG: &str = "ff6e7834-9d89-11e9-a62f-0242ac110003";
const CHAT: &str = "26534820-0aa1-11ee-9b63-0242ac120009";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tags_and_variables() -> (Value, Value) {
    let text =
        std::fs::read_to_string(format!("{}/tests/fixtures/tags_variables.jsonl", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut lines = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap());
    (lines.next().unwrap(), lines.next().unwrap())
}

fn results(v: &Value) -> Vec<Value> {
    v["results"].as_array().unwrap().clone()
}

#[test]
fn documented_payloads_map_to_canonical_rows() {
    let (tags, variables) = tags_and_variables();
    let bundle = ChatBundle {
        chat: results(&fixture("owned_chats_page.json"))[0].clone(),
        messages: results(&fixture("messages_page.json")),
        memberships: results(&fixture("memberships_page.json")),
        tags: results(&tags),
        variables: results(&variables),
    };
    let mapped = map_chat(ORG, &bundle, 7);
    // The documented chat reports 2 `msg` messages but the documented page shows one of them
    // (it is an excerpt): the completeness check must say so.
    let [incomplete] = &mapped.dead_letters[..] else { panic!("one dead letter expected: {:?}", mapped.dead_letters) };
    assert_eq!(incomplete.reason, pipe_plugin_sdk::REASON_INCOMPLETE);
    assert_eq!(incomplete.key["conversation_id"], CHAT);
    let conv = mapped.conversation.unwrap();
    assert_eq!(conv.conversation_id, CHAT);
    assert_eq!(conv.account_id, ORG);
    assert_eq!(conv.channel_id.as_deref(), Some("4e2e1e3a-0a9f-11ee-9777-0242ac120005"));
    assert_eq!(conv.state.as_deref(), Some("ended"));
    assert_eq!(conv.is_ended, Some(true));
    assert_eq!(conv.created_at, Some(1_686_739_774_406_000));
    assert_eq!(conv.message_count, Some(2));
    assert_eq!(conv.visitor_id.as_deref(), Some("a7dff4af6cd3c2bde01d630e0524157b"));
    assert_eq!(conv.visitor_name.as_deref(), Some("John Doe"), "falls back to the username variable");
    assert_eq!(conv.tags, vec!["Language: en".to_string()]);
    assert_eq!(conv.variables.get("username").map(String::as_str), Some("John Doe"));
    assert_eq!(conv.last_message_at, Some(1_686_739_791_036_000));

    let [visitor_msg, join] = &mapped.messages[..] else { panic!("two messages expected") };
    assert_eq!(visitor_msg.seq, 0);
    assert_eq!(visitor_msg.sender_role.as_str(), "visitor");
    assert!(visitor_msg.is_encrypted);
    assert_eq!(visitor_msg.text, None);
    assert_eq!(
        visitor_msg.ciphertext.as_deref(),
        Some("MDAwMDDQ9Mn5kH7v4BXslkglavGSYr0A2Uq1lMSYtYG/BZ5yVhy7rps46bfNuQS8/56ULEsN7pwW\n"),
        "ciphertext is kept exactly as received"
    );
    assert!(visitor_msg.attributes[ATTR_ENCRYPTED_KEY].starts_with("Why2w63niQ"));
    assert_eq!(join.seq, 1);
    assert_eq!(join.message_type, "join");
    assert_eq!(join.sender_role.as_str(), "system", "join is a system message whoever sent it");
    assert!(!join.is_encrypted, "a join has no ciphertext to decrypt");
    assert_eq!(join.sender_name.as_deref(), Some("David Developer"));

    // The plain message example: text kept, agent role.
    let plain = ChatBundle {
        chat: serde_json::json!({"id": "450fc49e-277e-4dd6-af0f-6e9dcb885b09"}),
        messages: vec![fixture("message_plain.json")],
        ..Default::default()
    };
    let mapped = map_chat(ORG, &plain, 7);
    assert_eq!(mapped.messages[0].text.as_deref(), Some("OK, what do you want to know?"));
    assert_eq!(mapped.messages[0].sender_role.as_str(), "agent");
    assert_eq!(mapped.messages[0].sender_name.as_deref(), Some("John Smith"));
}

/// Serves the documented payloads verbatim (only `next` of the chat list is pointed at the
/// loopback server, where its cursor leads to an empty last page).
#[tokio::test]
async fn source_reads_documented_payloads_over_http() {
    use pipe_plugin_sdk::{Event, SourceContext};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let base2 = base.clone();
    let app = Router::new()
        .route(
            "/api/v5/orgs/{org}/owned_chats",
            get(move |headers: HeaderMap, axum::extract::RawQuery(q): axum::extract::RawQuery| {
                let base = base2.clone();
                async move {
                    if headers.get("authorization").and_then(|h| h.to_str().ok()) != Some("Token t0k") {
                        return Err(StatusCode::UNAUTHORIZED);
                    }
                    if q.unwrap_or_default().contains("cursor=") {
                        return Ok(Json(serde_json::json!({"next": null, "previous": null, "results": []})));
                    }
                    let mut page = fixture("owned_chats_page.json");
                    let next = page["next"].as_str().unwrap().replace("https://service.giosg.com", &base);
                    page["next"] = Value::String(next);
                    Ok(Json(page))
                }
            }),
        )
        .route("/api/v5/orgs/{org}/owned_chats/{chat}/messages", get(|| async { Json(fixture("messages_page.json")) }))
        .route(
            "/api/v5/orgs/{org}/owned_chats/{chat}/memberships",
            get(|| async { Json(fixture("memberships_page.json")) }),
        )
        .route("/api/v5/orgs/{org}/owned_chats/{chat}/tags", get(|| async { Json(tags_and_variables().0) }))
        .route(
            "/api/v5/orgs/{org}/owned_chats/{chat}/visitors/{visitor}/variables",
            get(|Path((_, _, visitor)): Path<(String, String, String)>| async move {
                assert_eq!(visitor, "a7dff4af6cd3c2bde01d630e0524157b");
                Json(tags_and_variables().1)
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let cfg = serde_json::json!({"base_url": base, "organization_id": ORG, "token": "t0k"});
    let ctx = SourceContext { pipeline: "t".into(), state: None, limit: None, metrics: Arc::default() };
    let open = match pipe_plugin_giosg::descriptor().factory {
        pipe_plugin_sdk::PluginFactory::Source(f) => f,
        _ => unreachable!(),
    };
    let mut source = open(cfg, ctx).unwrap();
    let mut rows = std::collections::HashMap::<String, usize>::new();
    let mut checkpoints = 0;
    loop {
        match source.next().await.unwrap() {
            Event::Batch { stream, batch } => *rows.entry(stream).or_default() += batch.num_rows(),
            Event::Checkpoint(_) => checkpoints += 1,
            Event::DeadLetter(d) => assert_eq!(d.reason, "incomplete", "only the excerpt's completeness gap: {d:?}"),
            Event::End => break,
        }
    }
    assert_eq!(rows["conversations"], 1);
    assert_eq!(rows["messages"], 2);
    assert_eq!(checkpoints, 1);
}

/// A far-future or unrepresentable time is a dead letter naming the field, never a silent
/// value: a message without a usable `created_at` is left out, a chat keeps its row with the
/// column null. Both reasons make the run partial (`REJECTED_REASONS`).
#[test]
fn far_future_and_out_of_range_times_are_dead_letters() {
    let mut chat = results(&fixture("owned_chats_page.json"))[0].clone();
    chat["created_at"] = "2099-01-01T00:00:00.000Z".into();
    let mut messages = results(&fixture("messages_page.json"));
    messages[0]["created_at"] = "+262142-12-31T23:59:59Z".into();
    let first_id = messages[0]["id"].as_str().unwrap().to_string();
    let bundle = ChatBundle { chat, messages: messages.clone(), ..Default::default() };
    let mapped = map_chat(ORG, &bundle, 7);

    // (The fixture's page holds fewer messages than its chat's `message_count`: `incomplete`.)
    let times: Vec<_> = mapped.dead_letters.iter().filter(|d| d.reason != "incomplete").collect();
    let reasons: Vec<(&str, &str)> = times.iter().map(|d| (d.stream.as_str(), d.reason.as_str())).collect();
    assert_eq!(reasons, [("messages", "unparsable_timestamp"), ("conversations", "time_in_future")]);
    assert!(times.iter().all(|d| pipe_plugin_sdk::REJECTED_REASONS.contains(&d.reason.as_str())));
    assert_eq!(times[0].key["message_id"], first_id.as_str());
    assert!(times[1].message.contains("`created_at` \"2099-01-01T00:00:00.000Z\""), "{}", times[1].message);
    // Every other message is exported; the chat's row too, without the impossible time.
    assert_eq!(mapped.messages.len(), messages.len() - 1);
    assert!(mapped.messages.iter().all(|m| m.message_id != first_id));
    let conversation = mapped.conversation.unwrap();
    assert_eq!(conversation.created_at, None);
    assert!(conversation.updated_at.is_some());
}

/// Shape drift (docs/design.md §6): the documented message with a `sender_type` the mapping
/// does not know, one without `type`, and a membership of an unknown `member_type` are
/// exported with the documented fallbacks and each reported as `unexpected_shape`; the
/// documented payloads themselves report none.
#[test]
fn unknown_enum_values_are_exported_with_fallbacks_and_reported() {
    let (tags, variables) = tags_and_variables();
    let mut messages = results(&fixture("messages_page.json"));
    let mut bot = messages[0].clone();
    bot["id"] = Value::from("bot-1");
    bot["sender_type"] = Value::from("bot");
    bot["is_encrypted"] = Value::from(false);
    bot.as_object_mut().unwrap().remove("encrypted_message");
    bot["message"] = Value::from("Hello from a bot");
    let mut untyped = bot.clone();
    untyped["id"] = Value::from("untyped-1");
    untyped["sender_type"] = Value::from("visitor");
    untyped.as_object_mut().unwrap().remove("type");
    messages.extend([bot, untyped]);
    let mut memberships = results(&fixture("memberships_page.json"));
    let mut bot_member = memberships[0].clone();
    bot_member["member_type"] = Value::from("bot");
    memberships.push(bot_member);
    let bundle = ChatBundle {
        chat: results(&fixture("owned_chats_page.json"))[0].clone(),
        messages,
        memberships,
        tags: results(&tags),
        variables: results(&variables),
    };
    let mapped = map_chat(ORG, &bundle, 7);
    let drift: Vec<(&str, Option<&str>, &str)> = mapped
        .dead_letters
        .iter()
        .filter(|d| d.reason == pipe_plugin_sdk::REASON_UNEXPECTED_SHAPE)
        .map(|d| (d.stream.as_str(), d.key["message_id"].as_str(), d.message.as_str()))
        .collect();
    assert_eq!(drift.len(), 3, "{drift:?}");
    assert_eq!((drift[0].0, drift[0].1), ("messages", Some("bot-1")));
    assert!(drift[0].2.contains("unknown `sender_type` `bot`: exported with sender_role `system`"), "{}", drift[0].2);
    assert_eq!((drift[1].0, drift[1].1), ("messages", Some("untyped-1")));
    assert!(drift[1].2.contains("no string `type`: exported as `msg`"), "{}", drift[1].2);
    assert_eq!((drift[2].0, drift[2].1), ("conversations", None));
    assert!(drift[2].2.contains("unknown `member_type` `bot`"), "{}", drift[2].2);
    let row = |id: &str| mapped.messages.iter().find(|m| m.message_id == id).unwrap();
    assert_eq!((row("bot-1").sender_role.as_str(), row("bot-1").text.as_deref()), ("system", Some("Hello from a bot")));
    assert_eq!((row("untyped-1").sender_role.as_str(), row("untyped-1").message_type.as_str()), ("visitor", "msg"));
    assert!(mapped.conversation.is_some());
}

/// Visitor variables of an encrypted room (docs/vendors/giosg.md §5.5) are passed on as they
/// arrive for the `decrypt` transform, and the name is never taken from a ciphertext.
#[test]
fn encrypted_variables_are_not_a_visitor_name() {
    let bundle = ChatBundle {
        chat: results(&fixture("owned_chats_page.json"))[0].clone(),
        messages: Vec::new(),
        memberships: Vec::new(),
        tags: Vec::new(),
        variables: vec![
            serde_json::json!({"key": "username", "value": "MDAwMDDQ9Mn5kH7v4BXslkglavGSYr0A2Uq1lMSYtYG/BZ5yVhy7rps46bfNuQS8/56ULEsN7pwW\n"}),
            serde_json::json!({"key": "_encrypted_aes_key", "value": "c2VjcmV0\n"}),
        ],
    };
    let conv = map_chat(ORG, &bundle, 7).conversation.unwrap();
    assert_eq!(conv.visitor_name, None);
    assert_eq!(conv.variables.len(), 2, "left for the decrypt transform");
}
