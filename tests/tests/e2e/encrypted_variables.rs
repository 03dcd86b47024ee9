//! giosg visitor variables of encrypted rooms (docs/vendors/giosg.md §5.5; issue 17, part 5):
//! the simulator encrypts them with a key of their own, RSA-wrapped in `_encrypted_aes_key`.
//! The real `pipe` binary with the `decrypt` transform must export their plaintexts, fill
//! `visitor_name` from the decrypted `username`, never export a ciphertext or the key variable,
//! and dead-letter a value it cannot decrypt. Output read back with pyarrow.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use pipe_sim::giosg::{Dataset, GiosgSim, SimConfig, SimOptions, crypto, generate};
use pipe_tests::*;
use serde_json::Value;

fn pipeline(sim: &GiosgSim, d: &Dataset, transforms: &str) -> String {
    format!(
        "name = \"vars\"\n\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{}\"\ntoken = \"${{E2E_GIOSG_TOKEN}}\"\npage_size = 40\n\n{transforms}[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n",
        sim.base_url(),
        d.organization_id
    )
}

const DECRYPT: &str = "[[transforms]]\nplugin = \"decrypt\"\nprivate_key_file = \"key.pem\"\n\n";

/// `conversation_id` → (variables, visitor_name) of every conversation row under `dir/out`.
fn conversations(dir: &Path) -> BTreeMap<String, (BTreeMap<String, String>, Option<String>)> {
    let rows = Parquet::at(dir.join("out/conversations"))
        .columns(&["conversation_id", "variables", "visitor_name"])
        .read()
        .rows;
    rows.iter()
        .map(|r| {
            let vars = r["variables"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect())
                .unwrap_or_default();
            (r["conversation_id"].as_str().unwrap().to_string(), (vars, r["visitor_name"].as_str().map(str::to_string)))
        })
        .collect()
}

fn dead_letters(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .map(|t| t.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
        .unwrap_or_default()
}

/// The plaintext variables of a chat of the unencrypted dataset.
fn plain_variables(d: &Dataset, chat: &str) -> BTreeMap<String, String> {
    d.chat(chat)
        .unwrap()
        .variables
        .iter()
        .map(|v| (v["key"].as_str().unwrap().into(), v["value"].as_str().unwrap().into()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_visitor_variables_are_decrypted_and_never_exported_as_ciphertext() {
    let plain = generate(&SimConfig { encrypted_every: 2, ..SimConfig::small(40) });
    let mut served = plain.with_encrypted_variables();
    // One value damaged in transit: its HMAC no longer matches.
    let damaged = served
        .chats
        .iter()
        .position(|c| c.is_encrypted() && c.variables.len() >= 3)
        .expect("an encrypted chat with at least two variables");
    let damaged_id = served.chats[damaged].id().to_string();
    let damaged_var = served.chats[damaged].variables[0]["key"].as_str().unwrap().to_string();
    let v = &mut served.chats[damaged].variables[0]["value"];
    *v = Value::String(crypto::corrupt_ciphertext(v.as_str().unwrap()).unwrap());
    let encrypted_with_vars: Vec<String> = served
        .chats
        .iter()
        .filter(|c| c.variables.iter().any(|v| v["key"] == "_encrypted_aes_key"))
        .map(|c| c.id().to_string())
        .collect();
    assert!(encrypted_with_vars.len() >= 5, "the dataset exercises encrypted variables");

    let sim = GiosgSim::start(Arc::new(served.clone()), SimOptions::default()).await.unwrap();
    let env = [("E2E_GIOSG_TOKEN", served.token.as_str())];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.pem"), &served.private_key_pkcs8_pem).unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim, &served, DECRYPT)).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    // An undecryptable value is a dead letter, as for messages: not a partial run.
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let got = conversations(dir.path());
    assert_eq!(got.len(), served.chats.len());
    for c in &served.chats {
        let id = c.id();
        let mut want = plain_variables(&plain, id);
        if id == damaged_id {
            want.remove(&damaged_var);
        }
        let (vars, name) = &got[id];
        assert_eq!(vars, &want, "chat {id}: the plaintexts, and no `_encrypted_aes_key`");
        // The name: the membership's, else the (decrypted) `username`.
        let member =
            c.memberships.iter().find(|m| m["member_type"] == "visitor").and_then(|m| m["member_name"].as_str());
        let username = plain_variables(&plain, id)
            .get("username")
            .cloned()
            .filter(|_| !(id == damaged_id && damaged_var == "username"));
        assert_eq!(name.as_deref(), member.or(username.as_deref()), "chat {id}");
    }
    let dls = dead_letters(&dir.path().join("dl/conversations.jsonl"));
    assert_eq!(dls.len(), 1, "{dls:?}");
    assert_eq!(dls[0]["reason"], "hmac_mismatch");
    assert_eq!(dls[0]["key"]["conversation_id"], damaged_id.as_str());
    assert!(dls[0]["message"].as_str().unwrap().contains(&format!("`{damaged_var}`")), "{}", dls[0]);

    // Without `decrypt` the values stay as giosg sent them (like encrypted messages), but the
    // name is never taken from a ciphertext.
    let raw_dir = tempfile::tempdir().unwrap();
    std::fs::write(raw_dir.path().join("p.toml"), pipeline(&sim, &served, "")).unwrap();
    let out = run_pipe(raw_dir.path(), &["run", "p.toml"], &env).await;
    sim.shutdown().await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let undecrypted = conversations(raw_dir.path());
    for id in &encrypted_with_vars {
        let (vars, name) = &undecrypted[id];
        assert!(vars.contains_key("_encrypted_aes_key"), "chat {id}");
        assert!(name.as_deref().is_none_or(|n| !vars.values().any(|v| v == n)), "chat {id}: a ciphertext as the name");
    }
}
