//! The real `pipe` binary with the `decrypt` and `tags` transforms against the giosg simulator
//! (fresh RSA key per dataset), output read back with pyarrow and compared with the
//! simulator's ground truth: plaintexts, dead letters for a wrong key and for a damaged
//! message (rows kept, still encrypted), and tags from rules, renames and `tag_created`
//! messages carried onto their conversations.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use pipe_sim::giosg::{ChatTruth, Dataset, GiosgSim, MessageTruth, SimConfig, SimOptions, crypto, generate};
use pipe_tests::*;
use serde_json::Value;

/// Output rows by (conversation_id, message_id).
fn by_message(rows: &[Value]) -> HashMap<(String, String), &Value> {
    rows.iter()
        .map(|r| {
            ((r["conversation_id"].as_str().unwrap().to_string(), r["message_id"].as_str().unwrap().to_string()), r)
        })
        .collect()
}

fn id_of(m: &MessageTruth) -> String {
    m.json["id"].as_str().unwrap().to_string()
}

/// Every line of a dead-letter file (none if it does not exist).
fn dead_letters(file: &Path) -> Vec<Value> {
    match std::fs::read_to_string(file) {
        Ok(text) => {
            text.lines().map(|l| serde_json::from_str(l).expect("a dead letter is one JSON object per line")).collect()
        }
        Err(_) => Vec::new(),
    }
}

/// A pipeline reading the simulator: top-level keys first (`top`), then `[source]`, then
/// `body` (transforms, sinks, tables).
fn pipeline(sim: &GiosgSim, d: &Dataset, top: &str, body: &str) -> String {
    format!(
        "name = \"e2e\"\n{top}\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{}\"\ntoken = \"${{E2E_GIOSG_TOKEN}}\"\npage_size = 40\nconcurrency = 4\n\n{body}",
        sim.base_url(),
        d.organization_id
    )
}

const DECRYPT: &str = "[[transforms]]\nplugin = \"decrypt\"\nprivate_key_file = \"key.pem\"\n\n";
const PARQUET: &str = "[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n";

/// Starts the simulator on `dataset`, writes `key_pem` and the pipeline into a fresh
/// directory, runs `pipe run`, and returns the directory and the process output.
async fn run_with(
    dataset: Arc<Dataset>,
    key_pem: &str,
    top: &str,
    body: &str,
) -> (tempfile::TempDir, std::process::Output) {
    let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.pem"), key_pem).unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim, &dataset, top, body)).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[("E2E_GIOSG_TOKEN", &dataset.token)]).await;
    sim.shutdown().await;
    (dir, out)
}

fn encrypted_dataset(chats: usize) -> Dataset {
    // Every 2nd chat encrypted: plenty of encrypted messages, tag_created ones included.
    generate(&SimConfig { encrypted_every: 2, ..SimConfig::small(chats) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_encrypted_message_decrypts_to_the_simulators_plaintext() {
    let dataset = Arc::new(encrypted_dataset(120));
    let (dir, out) = run_with(
        dataset.clone(),
        &dataset.private_key_pkcs8_pem,
        "",
        &format!("{DECRYPT}[[transforms]]\nplugin = \"tags\"\n\n{PARQUET}[dead_letter]\npath = \"dl\"\n"),
    )
    .await;
    assert!(out.status.success(), "pipe failed: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("dead letters 0"), "{err}");
    assert!(!err.contains("BEGIN PRIVATE KEY") && !err.contains(&dataset.token), "nothing secret printed");

    let rows = Parquet::at(dir.path().join("out/messages")).read().rows;
    assert_eq!(rows.len(), dataset.message_count());
    let rows_by_id = by_message(&rows);
    let mut encrypted = 0;
    let mut tag_created = 0;
    for (chat, m) in dataset.encrypted_messages() {
        encrypted += 1;
        tag_created += usize::from(m.json["type"] == "tag_created");
        let row = rows_by_id[&(chat.id().to_string(), id_of(m))];
        assert_eq!(row["text"].as_str(), m.plaintext.as_deref(), "message {} of chat {}", id_of(m), chat.id());
        assert_eq!(row["is_encrypted"], false);
        assert!(row["ciphertext"].is_null());
        assert!(
            row["attributes"].get("giosg.encrypted_symmetric_key").is_none(),
            "the wrapped key goes with the ciphertext"
        );
    }
    assert!(
        encrypted > 100 && tag_created > 0,
        "the dataset exercises decryption ({encrypted} messages, {tag_created} tag_created)"
    );
    assert!(rows.iter().all(|r| r["is_encrypted"] == false), "nothing left encrypted");
    assert!(dead_letters(&dir.path().join("dl/messages.jsonl")).is_empty());

    // `tags` with no rules and no renames: conversation tags are exactly the vendor's (the
    // decrypted tag_created texts name tags the vendor list already has).
    let convs = Parquet::at(dir.path().join("out/conversations")).read().rows;
    assert_eq!(convs.len(), dataset.chats.len());
    for row in &convs {
        let chat = dataset.chat(row["conversation_id"].as_str().unwrap()).unwrap();
        let got: Vec<&str> = row["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(got, chat.tag_names(), "chat {}", chat.id());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_dead_letters_every_encrypted_message_and_keeps_it_encrypted() {
    let dataset = Arc::new(encrypted_dataset(60));
    // No [dead_letter] table: the records go to the default directory, with a warning.
    let (dir, out) =
        run_with(dataset.clone(), &crypto::unrelated_private_key_pem(), "", &format!("{DECRYPT}{PARQUET}")).await;
    assert!(out.status.success(), "dead letters alone do not fail the run: {}", stderr(&out));

    let truth: Vec<(&ChatTruth, &MessageTruth)> = dataset.encrypted_messages().collect();
    let dls: Vec<Value> = dead_letters(&dir.path().join(".pipe/dead_letter/e2e/messages.jsonl"))
        .into_iter()
        .filter(|d| d["stage"] == "decrypt")
        .collect();
    assert_eq!(dls.len(), truth.len(), "one dead letter per encrypted message");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("warning: {} dead letter(s)", truth.len())) && err.contains("[dead_letter]"),
        "{err}"
    );

    let rows = Parquet::at(dir.path().join("out/messages")).read().rows;
    assert_eq!(rows.len(), dataset.message_count(), "no row is dropped");
    let rows_by_id = by_message(&rows);
    let dl_by_id: HashMap<(String, String), &Value> = dls
        .iter()
        .map(|d| {
            ((d["key"]["conversation_id"].as_str().unwrap().into(), d["key"]["message_id"].as_str().unwrap().into()), d)
        })
        .collect();
    for (chat, m) in &truth {
        let key = (chat.id().to_string(), id_of(m));
        let dl = dl_by_id[&key];
        assert_eq!(dl["reason"], "key_unwrap_failed");
        assert_eq!(dl["stream"], "messages");
        assert_eq!(dl["key"]["vendor"], "giosg");
        assert_eq!(dl["key"]["account_id"].as_str(), Some(dataset.organization_id.as_str()));
        assert!(dl["message"].as_str().unwrap().contains(chat.id()));
        assert!(dl["at"].is_string());
        // raw is the whole row as it arrived: still encrypted.
        assert_eq!(dl["raw"]["ciphertext"], m.json["encrypted_message"]);
        assert_eq!(dl["raw"]["is_encrypted"], true);
        let row = rows_by_id[&key];
        assert_eq!(row["is_encrypted"], true);
        assert!(row["text"].is_null());
        assert_eq!(row["ciphertext"], m.json["encrypted_message"], "ciphertext kept as received");
        assert_eq!(row["attributes"]["giosg.encrypted_symmetric_key"], chat.chat["encrypted_symmetric_key"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_corrupted_message_gives_exactly_one_hmac_mismatch() {
    let mut dataset = encrypted_dataset(60);
    let (chat_id, message_id) = dataset.corrupt_one_encrypted_message().expect("the dataset has encrypted messages");
    let dataset = Arc::new(dataset);
    let body = format!("{DECRYPT}{PARQUET}[dead_letter]\npath = \"dl\"\n");
    let (dir, out) =
        run_with(dataset.clone(), &dataset.private_key_pkcs8_pem, "fail_on_dead_letters = true\n", &body).await;
    assert_eq!(out.status.code(), Some(4), "fail_on_dead_letters = true: {}", stderr(&out));

    let dls: Vec<Value> =
        dead_letters(&dir.path().join("dl/messages.jsonl")).into_iter().filter(|d| d["stage"] == "decrypt").collect();
    assert_eq!(dls.len(), 1, "{dls:#?}");
    assert_eq!(dls[0]["reason"], "hmac_mismatch");
    assert_eq!(dls[0]["key"]["conversation_id"].as_str(), Some(chat_id.as_str()));
    assert_eq!(dls[0]["key"]["message_id"].as_str(), Some(message_id.as_str()));

    // The output was committed all the same: the damaged row still encrypted, every other
    // encrypted message decrypted (its chat key was fine).
    let rows = Parquet::at(dir.path().join("out/messages")).read().rows;
    let rows_by_id = by_message(&rows);
    for (chat, m) in dataset.encrypted_messages() {
        let row = rows_by_id[&(chat.id().to_string(), id_of(m))];
        if id_of(m) == message_id {
            assert_eq!(row["is_encrypted"], true);
            assert_eq!(row["ciphertext"], m.json["encrypted_message"]);
        } else {
            assert_eq!(row["text"].as_str(), m.plaintext.as_deref());
        }
    }
}

/// Expected tags computed here, independently of the plugin: rules as case-insensitive
/// substring tests (the patterns below are plain alternations of ASCII words), renames as a
/// map, and the documented rule that a row the transform changes nothing about keeps the
/// vendor's list exactly, while a changed one is sorted and unique.
struct ExpectedTags {
    rules: Vec<(&'static str, Vec<&'static str>, Option<&'static str>)>,
    rename: HashMap<&'static str, &'static str>,
}

impl ExpectedTags {
    fn rule_tags(&self, text: Option<&str>, role: &str) -> Vec<&'static str> {
        let Some(text) = text else { return Vec::new() };
        let lower = text.to_lowercase();
        self.rules
            .iter()
            .filter(|(_, words, only)| words.iter().any(|w| lower.contains(w)) && only.is_none_or(|r| r == role))
            .map(|(tag, _, _)| *tag)
            .collect()
    }

    fn merge(&self, vendor: &[&str], extra: &[String]) -> Vec<String> {
        let renamed: BTreeSet<String> =
            vendor.iter().map(|t| self.rename.get(t).copied().unwrap_or(t).to_string()).collect();
        let any_rename = vendor.iter().any(|t| self.rename.contains_key(t));
        let adds = extra.iter().any(|t| !renamed.contains(t));
        if any_rename || adds {
            renamed.into_iter().chain(extra.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect()
        } else {
            vendor.iter().map(|t| t.to_string()).collect()
        }
    }
}

/// The canonical role of a giosg message (docs/design.md §3.1), computed from the served JSON.
fn role_of(m: &Value) -> &'static str {
    match (m["type"].as_str().unwrap(), m["sender_type"].as_str()) {
        ("join" | "leave" | "tag_created" | "system", _) => "system",
        (_, Some("visitor")) => "visitor",
        (_, Some("user")) => "agent",
        _ => "system",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_rules_roles_renames_and_aggregation_onto_conversations() {
    let dataset = Arc::new(encrypted_dataset(150));
    let tags = r#"[[transforms]]
plugin = "tags"

[[transforms.rules]]
tag = "order"
pattern = "(?i)order|tilaus"

[[transforms.rules]]
tag = "thanks"
pattern = "(?i)thank|kiitos"
roles = ["visitor"]

[transforms.rename]
"Support" = "support"
"Language: en" = "lang:en"

"#;
    let (dir, out) =
        run_with(dataset.clone(), &dataset.private_key_pkcs8_pem, "", &format!("{DECRYPT}{tags}{PARQUET}")).await;
    assert!(out.status.success(), "pipe failed: {}", stderr(&out));
    let want = ExpectedTags {
        rules: vec![("order", vec!["order", "tilaus"], None), ("thanks", vec!["thank", "kiitos"], Some("visitor"))],
        rename: HashMap::from([("Support", "support"), ("Language: en", "lang:en")]),
    };

    let rows = Parquet::at(dir.path().join("out/messages")).read().rows;
    let rows_by_id = by_message(&rows);
    let convs = Parquet::at(dir.path().join("out/conversations")).read().rows;
    let (mut ruled, mut role_filtered, mut renamed, mut from_encrypted) = (0, 0, 0, 0);
    for conv in &convs {
        let chat = dataset.chat(conv["conversation_id"].as_str().unwrap()).unwrap();
        let vendor = chat.tag_names();
        let mut learned: Vec<String> = Vec::new();
        for m in &chat.messages {
            let text = m.plaintext.as_deref();
            let role = role_of(&m.json);
            let rule_tags = want.rule_tags(text, role);
            if rule_tags.is_empty() && want.rule_tags(text, "visitor").contains(&"thanks") {
                role_filtered += 1; // a non-visitor "thank you" the roles filter left alone
            }
            ruled += usize::from(!rule_tags.is_empty());
            from_encrypted += usize::from(!rule_tags.is_empty() && m.json.get("encrypted_message").is_some());
            let row = rows_by_id[&(chat.id().to_string(), id_of(m))];
            let got: Vec<&str> = row["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
            let rule_tags: Vec<String> = rule_tags.iter().map(|t| t.to_string()).collect();
            assert_eq!(got, want.merge(&vendor, &rule_tags), "message {} ({role}: {text:?})", id_of(m));
            learned.extend(rule_tags);
            if m.json["type"] == "tag_created" {
                let name = text.unwrap();
                learned.push(want.rename.get(name).copied().unwrap_or(name).to_string());
            }
        }
        renamed += usize::from(vendor.iter().any(|t| want.rename.contains_key(t)));
        let got: Vec<&str> = conv["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(got, want.merge(&vendor, &learned), "conversation {}", chat.id());
    }
    assert!(
        ruled > 20 && role_filtered > 0 && renamed > 5 && from_encrypted > 0,
        "the dataset exercises rules ({ruled}), the roles filter ({role_filtered}), renames ({renamed}) and rules on decrypted text ({from_encrypted})"
    );
}
