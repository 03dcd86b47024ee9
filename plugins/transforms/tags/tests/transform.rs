//! The tags transform on Arrow batches: rule matching, the roles filter, renames, `tag_created`
//! messages, and aggregation onto the conversation row that follows the messages.

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use pipe_plugin_sdk::schema::{
    ConversationRow, ConversationsBuilder, MessageRow, MessagesBuilder, SenderRole, conversations_schema,
    messages_schema,
};
use pipe_plugin_sdk::{PluginFactory, StreamDecl, Transform, TransformContext, TransformOutput};
use serde_json::{Value, json};

fn open(config: Value) -> Box<dyn Transform> {
    let PluginFactory::Transform(open) = pipe_plugin_tags::descriptor().factory else { panic!("a transform") };
    open(config, TransformContext::default()).unwrap()
}

fn msg(
    conversation: &str,
    id: &str,
    role: SenderRole,
    kind: &str,
    text: Option<&str>,
    vendor_tags: &[&str],
) -> MessageRow {
    MessageRow {
        vendor: "giosg".into(),
        account_id: "org".into(),
        conversation_id: conversation.into(),
        message_id: id.into(),
        seq: 0,
        sent_at: 0,
        sender_role: role,
        sender_id: None,
        sender_name: None,
        message_type: kind.into(),
        text: text.map(str::to_string),
        is_encrypted: false,
        ciphertext: None,
        tags: vendor_tags.iter().map(|t| t.to_string()).collect(),
        attributes: Default::default(),
        raw: "{}".into(),
        extracted_at: 0,
    }
}

fn conv(id: &str, vendor_tags: &[&str]) -> ConversationRow {
    ConversationRow {
        vendor: "giosg".into(),
        account_id: "org".into(),
        conversation_id: id.into(),
        tags: vendor_tags.iter().map(|t| t.to_string()).collect(),
        raw: "{}".into(),
        ..Default::default()
    }
}

fn messages(rows: &[MessageRow]) -> RecordBatch {
    let mut b = MessagesBuilder::new();
    rows.iter().for_each(|r| b.append(r));
    b.finish()
}

fn conversations(rows: &[ConversationRow]) -> RecordBatch {
    let mut b = ConversationsBuilder::new();
    rows.iter().for_each(|r| b.append(r));
    b.finish()
}

async fn run(t: &mut Box<dyn Transform>, stream: &str, batch: RecordBatch) -> RecordBatch {
    let mut out = t.transform(stream, batch).await.unwrap();
    assert_eq!(out.len(), 1);
    let Some(TransformOutput::Batch(b)) = out.pop() else { panic!("a batch") };
    b
}

fn tags(b: &RecordBatch) -> Vec<Vec<String>> {
    let list = b.column_by_name("tags").unwrap().as_list::<i32>();
    (0..b.num_rows())
        .map(|r| list.value(r).as_string::<i32>().iter().map(|t| t.unwrap().to_string()).collect())
        .collect()
}

fn config() -> Value {
    json!({
        "rules": [
            {"tag": "billing", "pattern": "(?i)refund|invoice"},
            {"tag": "upset", "pattern": "(?i)terrible|worst", "roles": ["visitor"]},
        ],
        "rename": {"Billing": "billing", "Language: en": "lang:en"},
    })
}

#[tokio::test]
async fn rules_roles_renames_and_aggregation() {
    let mut t = open(config());
    let vendor = ["Sales", "Billing"];
    let m = messages(&[
        msg("A", "1", SenderRole::Visitor, "msg", Some("My INVOICE is terrible"), &vendor),
        msg("A", "2", SenderRole::Agent, "msg", Some("Sorry, the worst week. A refund is on its way"), &vendor),
        msg("A", "3", SenderRole::System, "join", None, &vendor),
        msg("A", "4", SenderRole::System, "tag_created", Some("Language: en"), &vendor),
        msg("B", "5", SenderRole::Visitor, "msg", Some("hello"), &["Support"]),
        msg("C", "6", SenderRole::Agent, "tag_created", Some("VIP"), &[]),
    ]);
    let out = run(&mut t, "messages", m).await;
    assert_eq!(out.schema(), messages_schema());
    assert_eq!(
        tags(&out),
        [
            vec!["Sales", "billing", "upset"], // rule tags + renamed vendor tags, sorted
            vec!["Sales", "billing"],          // `upset` is for visitors only; billing twice → once
            vec!["Sales", "billing"],          // no text: only the rename
            vec!["Sales", "billing"],          // tag_created: the message keeps vendor tags
            vec!["Support"],                   // nothing applies: exactly the vendor's
            vec![],
        ]
    );

    let c =
        conversations(&[conv("A", &vendor), conv("B", &["Support"]), conv("C", &[]), conv("D", &["Zeta", "Alpha"])]);
    let out = run(&mut t, "conversations", c).await;
    assert_eq!(out.schema(), conversations_schema());
    assert_eq!(
        tags(&out),
        [
            vec!["Sales", "billing", "lang:en", "upset"], // vendor (renamed) + rule tags of its messages + tag_created
            vec!["Support"],
            vec!["VIP"],
            vec!["Zeta", "Alpha"], // untouched: the vendor's list, in the vendor's order
        ]
    );

    // Once its row passed, a conversation's learned tags are forgotten: a later re-emission
    // (no new messages) carries vendor tags only.
    let again = run(&mut t, "conversations", conversations(&[conv("A", &vendor)])).await;
    assert_eq!(tags(&again), [vec!["Sales", "billing"]]);
}

#[tokio::test]
async fn messages_spanning_batches_aggregate_onto_their_conversation() {
    let mut t = open(config());
    run(&mut t, "messages", messages(&[msg("A", "1", SenderRole::Visitor, "msg", Some("refund?"), &[])])).await;
    run(&mut t, "messages", messages(&[msg("A", "2", SenderRole::Visitor, "msg", Some("terrible"), &[])])).await;
    let out = run(&mut t, "conversations", conversations(&[conv("A", &[])])).await;
    assert_eq!(tags(&out), [vec!["billing", "upset"]]);
}

#[tokio::test]
async fn without_rules_or_renames_conversation_tags_are_exactly_the_vendors() {
    let mut t = open(json!({"tag_created_messages": false}));
    let vendor = ["Sales", "Premium", "Sales"];
    let m = messages(&[
        msg("A", "1", SenderRole::Visitor, "msg", Some("refund"), &vendor),
        msg("A", "2", SenderRole::System, "tag_created", Some("Other"), &vendor),
    ]);
    let input = m.clone();
    assert_eq!(run(&mut t, "messages", m).await, input);
    let c = conversations(&[conv("A", &vendor)]);
    assert_eq!(run(&mut t, "conversations", c.clone()).await, c);

    // With tag_created on (the default), an announced tag the vendor list already has changes
    // nothing either.
    let mut t = open(json!({}));
    run(&mut t, "messages", messages(&[msg("A", "2", SenderRole::System, "tag_created", Some("Premium"), &vendor)]))
        .await;
    let c = conversations(&[conv("A", &vendor)]);
    assert_eq!(run(&mut t, "conversations", c.clone()).await, c);
}

#[tokio::test]
async fn touches_only_canonical_streams() {
    let t = open(config());
    let decl = |name: &str, schema| StreamDecl { name: name.into(), schema };
    assert!(t.output_stream(&decl("messages", messages_schema())).is_some());
    assert!(t.output_stream(&decl("conversations", conversations_schema())).is_some());
    assert!(t.output_stream(&decl("events", messages_schema())).is_none());
    let bare = std::sync::Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "x",
        arrow_schema::DataType::Utf8,
        true,
    )]));
    assert!(t.output_stream(&decl("messages", bare)).is_none());
}

#[test]
fn config_errors_point_at_the_key() {
    let d = pipe_plugin_tags::descriptor();
    let err = (d.check_config)(&json!({"rules": [{"tag": "x", "pattern": "a(b"}]})).unwrap_err();
    assert!(
        matches!(err, pipe_plugin_sdk::PluginError::Config { ref path, .. } if path == "rules[0].pattern"),
        "{err}"
    );
    let schema = (d.config_schema)();
    for key in ["rules", "rename", "tag_created_messages"] {
        assert!(schema["properties"][key].is_object(), "{key} in the schema");
    }
}
