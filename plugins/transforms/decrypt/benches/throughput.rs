//! Decrypt throughput: RSA chat-key unwraps per second and messages per second, on one core
//! and on all cores. Run with `benches/decrypt.sh` (which also prints `openssl speed rsa2048`
//! for comparison) or `cargo bench -p pipe-plugin-decrypt --bench throughput`.
//!
//! Workload: giosg-shaped data made here — a 2048-bit RSA key, `CHATS` chats with their own
//! AES/HMAC keys, `MESSAGES_PER_CHAT` messages each (chat-sized texts), batches of 8192 rows
//! as the giosg source cuts them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_lc_rs::cipher::{AES_256, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::{hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use pipe_plugin_decrypt::batch::{ATTR_ENCRYPTED_KEY, Decryptor};
use pipe_plugin_decrypt::parallel;
use pipe_plugin_decrypt::scheme::{decrypt_message, unwrap_chat_key};
use pipe_plugin_sdk::TransformOutput;
use pipe_plugin_sdk::schema::{MessageRow, MessagesBuilder, SenderRole};

const CHATS: usize = 256;
const MESSAGES_PER_CHAT: usize = 40;
const BATCH_ROWS: usize = 8192;

const TEXTS: [&str; 4] = [
    "Hi! I have a question about my order",
    "I can see your order here. It was shipped yesterday 📦",
    "Steps:\n1. Open Settings\n2. Choose \"Billing\"\n3. Click Update",
    "Hyvää päivää.\nLaskussani on virhe.\nVoitteko tarkistaa?",
];

struct Chat {
    wrapped: String,
    messages: Vec<String>,
}

fn mime(bytes: &[u8]) -> String {
    STANDARD.encode(bytes).as_bytes().chunks(76).map(|l| format!("{}\n", std::str::from_utf8(l).unwrap())).collect()
}

/// giosg.md §5.6, the encrypting side.
fn make_chat(public: &OaepPublicEncryptingKey) -> Chat {
    let (mut aes, mut mac) = ([0u8; 32], [0u8; 32]);
    rand::fill(&mut aes).unwrap();
    rand::fill(&mut mac).unwrap();
    let json = format!(
        r#"{{"hmacKey":{{"hmacKeyString":"{}","size":256}},"aesKeyString":"{}","mode":"CBC","size":256}}"#,
        URL_SAFE_NO_PAD.encode(mac),
        URL_SAFE_NO_PAD.encode(aes)
    );
    let mut out = vec![0u8; public.ciphertext_size()];
    let wrapped = mime(public.encrypt(&OAEP_SHA1_MGF1SHA1, json.as_bytes(), &mut out, None).unwrap());
    let enc = PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &aes).unwrap()).unwrap();
    let messages = (0..MESSAGES_PER_CHAT)
        .map(|i| {
            let mut ct = TEXTS[i % TEXTS.len()].as_bytes().to_vec();
            let ctx = enc.encrypt(&mut ct).unwrap();
            let iv: &[u8] = (&ctx).try_into().unwrap();
            let mut body = b"00000".to_vec();
            body.extend_from_slice(iv);
            body.extend_from_slice(&ct);
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &mac), &body);
            body.extend_from_slice(tag.as_ref());
            mime(&body)
        })
        .collect();
    Chat { wrapped, messages }
}

fn rsa_key(pkcs8: &[u8]) -> OaepPrivateDecryptingKey {
    OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(pkcs8).unwrap()).unwrap()
}

fn batches(chats: &[Chat]) -> Vec<arrow_array::RecordBatch> {
    let mut out = Vec::new();
    let mut b = MessagesBuilder::new();
    for (c, chat) in chats.iter().enumerate() {
        for (m, ct) in chat.messages.iter().enumerate() {
            b.append(&MessageRow {
                vendor: "giosg".into(),
                account_id: "org".into(),
                conversation_id: format!("chat-{c}"),
                message_id: format!("msg-{c}-{m}"),
                seq: m as u32,
                sent_at: 1_700_000_000_000_000,
                sender_role: SenderRole::Visitor,
                sender_id: None,
                sender_name: None,
                message_type: "msg".into(),
                text: None,
                is_encrypted: true,
                ciphertext: Some(ct.clone()),
                tags: vec![],
                attributes: BTreeMap::from([(ATTR_ENCRYPTED_KEY.to_string(), chat.wrapped.clone())]),
                raw: "{}".into(),
                extracted_at: 1_700_000_000_000_000,
            });
            if b.len() == BATCH_ROWS {
                out.push(b.finish());
            }
        }
    }
    if !b.is_empty() {
        out.push(b.finish());
    }
    out
}

/// Runs `f` at least `min` long (at least once) and returns (runs, elapsed).
fn time(min: Duration, mut f: impl FnMut()) -> (u32, Duration) {
    let start = Instant::now();
    let mut runs = 0;
    while runs == 0 || start.elapsed() < min {
        f();
        runs += 1;
    }
    (runs, start.elapsed())
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let all = parallel::default_threads();
    let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
    let pkcs8: Pkcs8V1Der<'static> = private.as_der().unwrap();
    let public = OaepPublicEncryptingKey::new(private.public_key()).unwrap();
    let chats: Vec<Chat> = (0..CHATS).map(|_| make_chat(&public)).collect();
    let messages = CHATS * MESSAGES_PER_CHAT;
    let input = batches(&chats);
    let min = Duration::from_secs(3);
    println!(
        "decrypt throughput: RSA-2048 (OAEP SHA-1), {CHATS} chats x {MESSAGES_PER_CHAT} messages, {} batches, {all} core(s)",
        input.len()
    );

    // 1. RSA unwraps alone.
    let rsa = rsa_key(pkcs8.as_ref());
    let wrapped: Vec<&str> = chats.iter().map(|c| c.wrapped.as_str()).collect();
    for threads in [1, all] {
        let (runs, t) = time(min, || {
            let keys = parallel::map(&wrapped, threads, 1, |w| unwrap_chat_key(&rsa, w).map(|_| ()));
            assert!(keys.iter().all(Result::is_ok));
        });
        let per_s = (runs as usize * CHATS) as f64 / t.as_secs_f64();
        println!(
            "  RSA unwraps/s        {threads:>2} thread(s): {per_s:>10.0}  ({:.0} per core)",
            per_s / threads as f64
        );
    }

    // 2. AES + HMAC per message, keys already unwrapped.
    let keys: Vec<_> = chats.iter().map(|c| unwrap_chat_key(&rsa, &c.wrapped).unwrap()).collect();
    let jobs: Vec<(usize, &str)> =
        chats.iter().enumerate().flat_map(|(i, c)| c.messages.iter().map(move |m| (i, m.as_str()))).collect();
    for threads in [1, all] {
        let (runs, t) = time(min, || {
            let out = parallel::map(&jobs, threads, 256, |(k, ct)| decrypt_message(&keys[*k], ct).map(|s| s.len()));
            assert!(out.iter().all(Result::is_ok));
        });
        let per_s = (runs as usize * messages) as f64 / t.as_secs_f64();
        println!(
            "  AES messages/s       {threads:>2} thread(s): {per_s:>10.0}  ({:.0} per core)",
            per_s / threads as f64
        );
    }

    // 3. The transform's batch path end to end (fresh cache each run: every chat key
    //    unwrapped once, 40 messages per key), including Arrow in and out.
    for threads in [1, all] {
        let (runs, t) = time(min, || {
            let mut d = Decryptor::new(rsa_key(pkcs8.as_ref()), 16_384, threads);
            for b in &input {
                let out = d.decrypt_batch(b).unwrap();
                assert!(matches!(out.as_slice(), [TransformOutput::Batch(_)]), "no dead letters");
            }
            assert_eq!(d.stats.unwraps as usize, CHATS);
        });
        let per_s = (runs as usize * messages) as f64 / t.as_secs_f64();
        println!(
            "  transform messages/s {threads:>2} thread(s): {per_s:>10.0}  ({:.0} per core; {MESSAGES_PER_CHAT} messages per chat key)",
            per_s / threads as f64
        );
    }
}
