//! The decrypt transform on Arrow batches: decrypted rows, dead letters for each failure
//! reason, rows kept in place, one RSA unwrap per chat across batches.

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use aws_lc_rs::cipher::{AES_256, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::{KeySize, OAEP_SHA1_MGF1SHA1, OaepPublicEncryptingKey, PrivateDecryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use pipe_plugin_decrypt::batch::{ATTR_ENCRYPTED_KEY, Decryptor};
use pipe_plugin_decrypt::private_key;
use pipe_plugin_sdk::schema::{
    ConversationRow, ConversationsBuilder, MessageRow, MessagesBuilder, SenderRole, messages_schema,
};
use pipe_plugin_sdk::{DeadLetter, PluginFactory, StreamDecl, TransformContext, TransformOutput};
use serde_json::json;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The encrypting side of giosg.md §5.6, for building test rows.
struct Chat {
    aes: [u8; 32],
    mac: [u8; 32],
    wrapped: String,
}

impl Chat {
    fn new(public: &OaepPublicEncryptingKey, seed: u8) -> Self {
        let (aes, mac) = ([seed; 32], [seed.wrapping_add(100); 32]);
        let json = format!(
            r#"{{"hmacKey":{{"hmacKeyString":"{}","size":256}},"aesKeyString":"{}","mode":"CBC","size":256}}"#,
            URL_SAFE_NO_PAD.encode(mac),
            URL_SAFE_NO_PAD.encode(aes)
        );
        let mut out = vec![0u8; public.ciphertext_size()];
        let ct = public.encrypt(&OAEP_SHA1_MGF1SHA1, json.as_bytes(), &mut out, None).unwrap();
        Chat { aes, mac, wrapped: mime(ct) }
    }

    fn encrypt(&self, text: &str) -> String {
        let key = PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &self.aes).unwrap()).unwrap();
        let mut ct = text.as_bytes().to_vec();
        let ctx = key.encrypt(&mut ct).unwrap();
        let iv: &[u8] = (&ctx).try_into().unwrap();
        let mut body = b"00000".to_vec();
        body.extend_from_slice(iv);
        body.extend_from_slice(&ct);
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.mac), &body);
        body.extend_from_slice(tag.as_ref());
        mime(&body)
    }
}

fn mime(bytes: &[u8]) -> String {
    STANDARD.encode(bytes).as_bytes().chunks(76).map(|l| format!("{}\n", std::str::from_utf8(l).unwrap())).collect()
}

fn row(conversation: &str, id: &str, text: Option<&str>, ciphertext: Option<String>, key: Option<&str>) -> MessageRow {
    let mut attributes = BTreeMap::from([("giosg.other".to_string(), "kept".to_string())]);
    if let Some(k) = key {
        attributes.insert(ATTR_ENCRYPTED_KEY.into(), k.into());
    }
    MessageRow {
        vendor: "giosg".into(),
        account_id: "org".into(),
        conversation_id: conversation.into(),
        message_id: id.into(),
        seq: 0,
        sent_at: 1_700_000_000_000_000,
        sender_role: SenderRole::Visitor,
        sender_id: None,
        sender_name: None,
        message_type: "msg".into(),
        is_encrypted: ciphertext.is_some(),
        text: text.map(str::to_string),
        ciphertext,
        tags: vec!["Sales".into()],
        attributes,
        raw: "{}".into(),
        extracted_at: 1_700_000_000_000_000,
    }
}

fn batch(rows: &[MessageRow]) -> RecordBatch {
    let mut b = MessagesBuilder::new();
    rows.iter().for_each(|r| b.append(r));
    b.finish()
}

fn split(out: Vec<TransformOutput>) -> (RecordBatch, Vec<DeadLetter>) {
    let mut it = out.into_iter();
    let Some(TransformOutput::Batch(b)) = it.next() else { panic!("the batch comes first") };
    let dls = it.map(|o| match o {
        TransformOutput::DeadLetter(d) => d,
        TransformOutput::Batch(_) => panic!("one batch only"),
    });
    (b, dls.collect())
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a arrow_array::StringArray {
    b.column_by_name(name).unwrap().as_string::<i32>()
}

#[test]
fn decrypts_keeps_failures_in_place_and_reports_each_reason() {
    let private = private_key::parse(&std::fs::read(fixture("test_key_pkcs8.pem")).unwrap(), None).unwrap();
    let public = OaepPublicEncryptingKey::new(private.public_key()).unwrap();
    let rsa = private_key::load(&fixture("test_key_pkcs8.pem"), None).unwrap();
    let stranger = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
    let stranger = OaepPublicEncryptingKey::new(stranger.public_key()).unwrap();

    let a = Chat::new(&public, 1);
    let b = Chat::new(&stranger, 2); // wrapped for someone else's key
    let mut tampered = STANDARD.decode(a.encrypt("secret").replace('\n', "")).unwrap();
    tampered[30] ^= 0x40;
    let rows = vec![
        row("A", "a1", None, Some(a.encrypt("Hei 👋 maailma")), Some(&a.wrapped)),
        row("A", "a2", Some("plain already"), None, None),
        row("A", "a3", None, Some(a.encrypt("").replace('\n', "")), Some(&a.wrapped.replace('\n', ""))),
        row("A", "a4", None, Some(STANDARD.encode(&tampered)), Some(&a.wrapped)),
        row("B", "b1", None, Some(b.encrypt("x")), Some(&b.wrapped)),
        row("B", "b2", None, Some(b.encrypt("y")), Some(&b.wrapped)),
        row("C", "c1", None, Some(a.encrypt("no key")), None),
        row("A", "a5", None, Some("!!!".into()), Some(&a.wrapped)),
    ];
    let input = batch(&rows);
    let mut d = Decryptor::new(rsa, 100, 2);
    let (out, dls) = split(d.decrypt_batch(&input).unwrap());

    assert_eq!(out.schema(), messages_schema());
    assert_eq!(out.num_rows(), rows.len(), "no row is removed");
    assert_eq!(col(&out, "message_id"), col(&input, "message_id"), "order kept");
    let text = col(&out, "text");
    let enc = out.column_by_name("is_encrypted").unwrap().as_boolean();
    let ct = col(&out, "ciphertext");
    assert_eq!(text.value(0), "Hei 👋 maailma");
    assert!(!enc.value(0) && ct.is_null(0));
    assert_eq!(text.value(1), "plain already");
    assert_eq!(text.value(2), "", "empty text, single-line base64");
    for failed in [3, 4, 5, 6, 7] {
        assert!(text.is_null(failed) && enc.value(failed), "row {failed} stays encrypted");
        assert_eq!(ct.value(failed), input.column_by_name("ciphertext").unwrap().as_string::<i32>().value(failed));
    }
    // The wrapped key goes with the ciphertext; other attributes stay.
    let attrs = out.column_by_name("attributes").unwrap().as_map();
    let keys_of = |r: usize| -> Vec<String> {
        let e = attrs.value(r);
        e.column(0).as_string::<i32>().iter().map(|k| k.unwrap().to_string()).collect()
    };
    assert_eq!(keys_of(0), ["giosg.other"]);
    assert_eq!(keys_of(3), ["giosg.encrypted_symmetric_key", "giosg.other"]);

    let reasons: Vec<(&str, &str)> =
        dls.iter().map(|d| (d.key["message_id"].as_str().unwrap(), d.reason.as_str())).collect();
    assert_eq!(
        reasons,
        [
            ("a4", "hmac_mismatch"),
            ("b1", "key_unwrap_failed"),
            ("b2", "key_unwrap_failed"),
            ("c1", "missing_chat_key"),
            ("a5", "bad_ciphertext")
        ]
    );
    let dl = &dls[1];
    assert_eq!(dl.stream, "messages");
    assert_eq!(dl.key, json!({"vendor": "giosg", "account_id": "org", "conversation_id": "B", "message_id": "b1"}));
    assert!(dl.message.contains("conversation B"), "{}", dl.message);
    assert_eq!(dl.raw["is_encrypted"], true);
    assert_eq!(dl.raw["ciphertext"].as_str(), rows[4].ciphertext.as_deref(), "raw is the row as received");
    assert_eq!(dl.raw["sent_at"], "2023-11-14T22:13:20.000000Z", "raw is the row in docs/design.md §3 JSON form");
    assert_eq!(dl.raw["tags"], json!(["Sales"]));
    assert!(dl.stage.is_empty(), "the engine names the stage");

    // One RSA operation per chat key (A, B), not per message; C has none.
    assert_eq!(d.stats.unwraps, 2);
    assert_eq!((d.stats.encrypted, d.stats.decrypted, d.stats.failed), (7, 2, 5));

    // The next batch of the same chats needs no RSA at all, failures included.
    let more = batch(&[
        row("A", "a6", None, Some(a.encrypt("again")), Some(&a.wrapped)),
        row("B", "b3", None, Some(b.encrypt("z")), Some(&b.wrapped)),
    ]);
    let (out, dls) = split(d.decrypt_batch(&more).unwrap());
    assert_eq!(col(&out, "text").value(0), "again");
    assert_eq!(dls.len(), 1);
    assert_eq!(d.stats.unwraps, 2);
}

#[test]
fn batches_without_encrypted_rows_pass_untouched() {
    let rsa = private_key::load(&fixture("test_key_pkcs8.pem"), None).unwrap();
    let input = batch(&[row("A", "a1", Some("hello"), None, None)]);
    let (out, dls) = split(Decryptor::new(rsa, 10, 2).decrypt_batch(&input).unwrap());
    assert!(dls.is_empty());
    assert_eq!(out, input);
}

/// Many chats in one batch: every key unwrapped once, on several threads, results in order.
#[test]
fn many_chats_in_one_batch() {
    let private = private_key::parse(&std::fs::read(fixture("test_key_pkcs1.pem")).unwrap(), None).unwrap();
    let public = OaepPublicEncryptingKey::new(private.public_key()).unwrap();
    let chats: Vec<Chat> = (0..24).map(|i| Chat::new(&public, i)).collect();
    let mut rows = Vec::new();
    for (c, chat) in chats.iter().enumerate() {
        for m in 0..20 {
            let text = format!("chat {c} message {m}");
            rows.push(row(
                &format!("c{c}"),
                &format!("m{c}-{m}"),
                None,
                Some(chat.encrypt(&text)),
                Some(&chat.wrapped),
            ));
        }
    }
    let rsa = private_key::load(&fixture("test_key_pkcs1.pem"), None).unwrap();
    let mut d = Decryptor::new(rsa, 1000, 4);
    let (out, dls) = split(d.decrypt_batch(&batch(&rows)).unwrap());
    assert!(dls.is_empty());
    for (i, r) in rows.iter().enumerate() {
        let want = format!("chat {} message {}", &r.conversation_id[1..], r.message_id.rsplit('-').next().unwrap());
        assert_eq!(col(&out, "text").value(i), want);
    }
    assert_eq!(d.stats.unwraps, 24);
}

/// Through the plugin descriptor, as the engine opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_descriptor() {
    let d = pipe_plugin_decrypt::descriptor();
    assert_eq!(d.name, "decrypt");
    let schema = (d.config_schema)();
    assert!(schema["properties"]["private_key_file"].is_object() && schema["properties"]["passphrase"].is_object());
    // Validation loads the key, so a missing file is caught before a run.
    (d.check_config)(&json!({"private_key_file": fixture("test_key_pkcs8.pem")})).unwrap();
    let err = (d.check_config)(&json!({"private_key_file": "/nonexistent.pem"})).unwrap_err();
    assert!(
        matches!(err, pipe_plugin_sdk::PluginError::Config { ref path, .. } if path == "private_key_file"),
        "{err}"
    );
    assert!((d.check_config)(&json!({"private_key_file": "k", "nope": 1})).is_err());

    let PluginFactory::Transform(open) = d.factory else { panic!("a transform") };
    let err = open(json!({"private_key_file": "/nonexistent.pem"}), TransformContext::default()).err().unwrap();
    assert!(
        matches!(err, pipe_plugin_sdk::PluginError::Config { ref path, .. } if path == "private_key_file"),
        "{err}"
    );
    let err =
        open(json!({"private_key_file": fixture("test_key_pkcs8.pem"), "threads": 0}), TransformContext::default())
            .err()
            .unwrap();
    assert!(matches!(err, pipe_plugin_sdk::PluginError::Config { ref path, .. } if path == "threads"), "{err}");

    let mut t = open(
        json!({"private_key_file": fixture("test_key_pkcs8_encrypted.pem"), "passphrase": "correct-horse"}),
        TransformContext::default(),
    )
    .unwrap();
    let messages = StreamDecl { name: "messages".into(), schema: messages_schema() };
    assert_eq!(t.output_stream(&messages).unwrap().schema, messages_schema());
    let conversations =
        StreamDecl { name: "conversations".into(), schema: pipe_plugin_sdk::schema::conversations_schema() };
    assert_eq!(
        t.output_stream(&conversations).unwrap().schema,
        pipe_plugin_sdk::schema::conversations_schema(),
        "visitor variables are decrypted in place"
    );
    let other = StreamDecl { name: "events".into(), schema: messages_schema() };
    assert!(t.output_stream(&other).is_none());

    let private = private_key::parse(&std::fs::read(fixture("test_key_pkcs8.pem")).unwrap(), None).unwrap();
    let chat = Chat::new(&OaepPublicEncryptingKey::new(private.public_key()).unwrap(), 5);
    let input = batch(&[row("A", "a1", None, Some(chat.encrypt("hello")), Some(&chat.wrapped))]);
    let (out, dls) = split(t.transform("messages", input).await.unwrap());
    assert!(dls.is_empty());
    assert_eq!(col(&out, "text").value(0), "hello");
}

/// A conversation row of `conversation` with these visitor variables and name.
fn conversation(conversation: &str, variables: &[(&str, String)], visitor_name: Option<&str>) -> ConversationRow {
    ConversationRow {
        vendor: "giosg".into(),
        account_id: "org".into(),
        conversation_id: conversation.into(),
        visitor_name: visitor_name.map(str::to_string),
        variables: variables.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        raw: "{}".into(),
        extracted_at: 1_700_000_000_000_000,
        ..Default::default()
    }
}

/// `(variables, visitor_name)` of each row of a conversations batch.
fn variables_of(b: &RecordBatch) -> Vec<(BTreeMap<String, String>, Option<String>)> {
    let vars = b.column_by_name("variables").unwrap().as_map();
    let names = col(b, "visitor_name");
    (0..b.num_rows())
        .map(|r| {
            let entries = vars.value(r);
            let (k, v) = (entries.column(0).as_string::<i32>(), entries.column(1).as_string::<i32>());
            let map = (0..entries.len()).map(|e| (k.value(e).to_string(), v.value(e).to_string())).collect();
            (map, names.is_valid(r).then(|| names.value(r).to_string()))
        })
        .collect()
}

/// Encrypted visitor variables (docs/vendors/giosg.md §5.5): decrypted in place, the key
/// variable dropped, the name filled from `username`; an undecryptable value removed and
/// dead-lettered; rows without the key untouched; a key for someone else fails every value.
#[test]
fn visitor_variables_are_decrypted_and_never_left_as_ciphertext() {
    let private = private_key::parse(&std::fs::read(fixture("test_key_pkcs8.pem")).unwrap(), None).unwrap();
    let public = OaepPublicEncryptingKey::new(private.public_key()).unwrap();
    let rsa = private_key::load(&fixture("test_key_pkcs8.pem"), None).unwrap();
    let stranger = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
    let stranger = OaepPublicEncryptingKey::new(stranger.public_key()).unwrap();
    let (a, b) = (Chat::new(&public, 7), Chat::new(&stranger, 8));
    let mut tampered = STANDARD.decode(a.encrypt("C-00042").replace('\n', "")).unwrap();
    tampered[30] ^= 0x40;
    let rows = [
        conversation(
            "A",
            &[
                ("username", a.encrypt("Мария Петрова")),
                ("email", a.encrypt("maria@example.com")),
                ("customer_id", STANDARD.encode(&tampered)),
                ("_encrypted_aes_key", a.wrapped.clone()),
            ],
            None,
        ),
        conversation("P", &[("username", "Plain Person".into())], Some("Plain Person")),
        conversation(
            "B",
            &[("plan", b.encrypt("pro")), ("_encrypted_aes_key", b.wrapped.clone())],
            Some("Member Name"),
        ),
    ];
    let mut builder = ConversationsBuilder::new();
    rows.iter().for_each(|r| builder.append(r));
    let input = builder.finish();
    let mut d = Decryptor::new(rsa, 100, 2);
    let (out, dls) = split(d.decrypt_variables(&input).unwrap());
    assert_eq!(out.schema(), input.schema());
    let got = variables_of(&out);
    let map =
        |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
    assert_eq!(
        got[0],
        (map(&[("username", "Мария Петрова"), ("email", "maria@example.com")]), Some("Мария Петрова".to_string()))
    );
    assert_eq!(got[1], (map(&[("username", "Plain Person")]), Some("Plain Person".to_string())));
    assert_eq!(got[2], (map(&[]), Some("Member Name".to_string())), "never a ciphertext, never the key");
    let reasons: Vec<(&str, &str, bool)> = dls
        .iter()
        .map(|d| {
            (
                d.reason.as_str(),
                d.key["conversation_id"].as_str().unwrap(),
                d.message.contains("`customer_id`") || d.message.contains("`plan`"),
            )
        })
        .collect();
    assert_eq!(reasons, [("hmac_mismatch", "A", true), ("key_unwrap_failed", "B", true)]);
    assert!(dls.iter().all(|d| d.stream == "conversations" && !d.message.contains("BEGIN")));
    // The other columns are the same buffers.
    assert_eq!(out.column_by_name("raw").unwrap().to_data(), input.column_by_name("raw").unwrap().to_data());
}
