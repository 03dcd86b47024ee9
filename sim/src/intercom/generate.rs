//! Deterministic workspace generation: the docs' example conversation, then conversations of a
//! contact, admins and a bot, with comments, notes and events.

use std::collections::BTreeMap;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Author, ConversationTruth, Dataset, PartTruth, SimConfig};

/// Creation time of the first generated conversation (epoch s): 2026-01-05T07:00:00Z.
pub const EPOCH_S: i64 = 1_767_596_400;

const USER_LINES: &[&str] = &[
    "<p>Hi, I was charged twice for my subscription</p>",
    "<p>Can I change the email on my account?</p>",
    "<p>The export button does nothing 😩</p>",
    "<p>Thanks!</p><p>That fixed it.</p>",
    "<p>Is there an API for invoices &amp; receipts?</p>",
    "<p>Bonjour, je n'arrive pas à me connecter</p>",
    "<p>請問可以開發票嗎？</p>",
    "<p>ok</p>",
];

const ADMIN_LINES: &[&str] = &[
    "<p>Hi there, I've refunded the second charge.</p>",
    "<p>Sure: Settings → Account → Email.</p>",
    "<p>Could you try again in a private window?<br>It may be a cached script.</p>",
    "<p>Yes, see our docs on &lt;invoices&gt;.</p>",
    "<p>Glad to help, have a nice day!</p>",
];

const BOT_LINES: &[&str] =
    &["<p>Hi! I'm Fin, an AI agent. How can I help?</p>", "<p>Here's an article that might help: Billing FAQ</p>"];

const NOTES: &[&str] = &["<p>Customer is on the legacy plan</p>", "<p>Escalate to billing if it happens again</p>"];

const ADMINS: &[(&str, &str)] = &[("814860", "Mark Strong"), ("274", "Operator"), ("991267", "Zoë Ng")];

const NAMES: &[&str] = &["Pat Doe", "Minji Kim", "Émile Roux", "Sam", "陳大文"];

const TAGS: &[(&str, &str)] = &[("7001", "billing"), ("7002", "bug"), ("7003", "vip")];

/// The docs' literal example conversation (API 2.x "List all conversations": `1911149811`),
/// with the docs' literal example part (`3`).
fn docs_example() -> ConversationTruth {
    let source = PartTruth {
        id: "269650473".into(),
        part_type: "source".into(),
        body: Some("<p>Hi</p>".into()),
        created_at: 1_539_897_198,
        author: Author { kind: "lead".into(), id: "5bc8f7421ae2d96695c18a".into(), name: None, email: None },
        literal: BTreeMap::from([
            ("attachments".into(), json!([])),
            ("url".into(), json!("https://intercom-survey-app.glitch.me/")),
        ]),
    };
    let part = PartTruth {
        id: "3".into(),
        part_type: "comment".into(),
        body: Some("<p>Okay!</p>".into()),
        created_at: 1_663_597_223,
        author: Author {
            kind: "admin".into(),
            id: "274".into(),
            name: Some("Operator".into()),
            email: Some("operator+abcd1234@intercom.io".into()),
        },
        literal: BTreeMap::from([
            ("updated_at".into(), json!(1_663_597_260)),
            ("notified_at".into(), json!(1_663_597_260)),
            ("assigned_to".into(), json!({"type": "contact", "id": "1a2b3c"})),
            ("attachments".into(), json!([])),
            ("external_id".into(), json!("abcd1234")),
            ("redacted".into(), json!(false)),
        ]),
    };
    let custom = json!({"issue_type": "Billing", "priority": "High"});
    ConversationTruth {
        id: "1911149811".into(),
        created_at: 1_539_897_198,
        updated_at: 1_540_393_270,
        title: None,
        state: "open".into(),
        source,
        delivered_as: "customer_initiated".into(),
        contact: Author { kind: "lead".into(), id: "5bc8f7ae2d96695c18a".into(), name: None, email: None },
        admin_ids: vec!["814860".into()],
        admin_assignee_id: Some("814860".into()),
        tags: Vec::new(),
        custom_attributes: custom.as_object().cloned().unwrap_or_default(),
        parts: vec![part],
        literal: BTreeMap::from([
            ("contacts".into(), json!([{"id": "5bc8f7ae2d96695c18a", "type": "lead"}])),
            (
                "teammates".into(),
                json!([{"id": "814860", "type": "admin", "name": "Mark Strong", "email": "mk@acmeinc.org"}]),
            ),
            ("team_assignee_id".into(), Value::Null),
            (
                "topics".into(),
                json!({"type": "topic.list", "topics": [{"type": "topic", "name": "Example Topic 1", "id": 839}], "total_count": 1}),
            ),
            ("read".into(), json!(true)),
        ]),
    }
}

/// Ids: one counter per workspace, so source and part ids never collide.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> String {
        self.0 += 1;
        self.0.to_string()
    }
}

fn contact_author(rng: &mut ChaCha8Rng, contact_id: &str) -> Author {
    let kind = if rng.random_bool(0.7) { "user" } else { "lead" };
    let name = rng.random_bool(0.8).then(|| NAMES.choose(rng).expect("names").to_string());
    Author { kind: kind.into(), id: contact_id.into(), name, email: None }
}

fn admin_author(rng: &mut ChaCha8Rng) -> Author {
    let (id, name) = *ADMINS.choose(rng).expect("admins");
    Author {
        kind: "admin".into(),
        id: id.into(),
        name: Some(name.into()),
        email: Some(format!("{id}@support.example")),
    }
}

fn bot_author() -> Author {
    Author { kind: "bot".into(), id: "5013".into(), name: Some("Fin".into()), email: None }
}

/// `n` parts from `at` on, about a minute apart: comments of the contact, admins and the bot,
/// a note now and then, an assignment event.
fn parts(rng: &mut ChaCha8Rng, ids: &mut Ids, contact: &Author, n: usize, at: i64) -> Vec<PartTruth> {
    let mut t = at;
    (0..n)
        .map(|i| {
            t += rng.random_range(20..120);
            let roll = rng.random_range(0..10);
            let (part_type, body, author) = match roll {
                0 => ("assignment", None, admin_author(rng)),
                1 => ("note", Some(NOTES.choose(rng).expect("notes").to_string()), admin_author(rng)),
                2 if i < 2 => ("comment", Some(BOT_LINES.choose(rng).expect("bot").to_string()), bot_author()),
                3..=5 => ("comment", Some(ADMIN_LINES.choose(rng).expect("admin").to_string()), admin_author(rng)),
                _ => ("comment", Some(USER_LINES.choose(rng).expect("user").to_string()), contact.clone()),
            };
            PartTruth {
                id: ids.next(),
                part_type: part_type.into(),
                body,
                created_at: t,
                author,
                literal: BTreeMap::new(),
            }
        })
        .collect()
}

fn conversation(rng: &mut ChaCha8Rng, ids: &mut Ids, index: usize, n_parts: usize) -> ConversationTruth {
    let created = EPOCH_S + index as i64 * 37 * 60;
    let contact_id = format!("6{:023x}", rng.random::<u64>());
    let contact = contact_author(rng, &contact_id);
    let admin_initiated = rng.random_bool(0.15);
    let source_author = if admin_initiated { admin_author(rng) } else { contact.clone() };
    let source = PartTruth {
        id: ids.next(),
        part_type: "source".into(),
        body: Some(USER_LINES.choose(rng).expect("lines").to_string()),
        created_at: created,
        author: source_author,
        literal: BTreeMap::new(),
    };
    let mut parts = parts(rng, ids, &contact, n_parts, created);
    let state = ["open", "closed", "closed", "snoozed"].choose(rng).expect("states").to_string();
    if state == "closed" {
        let at = parts.last().map_or(created, |p| p.created_at) + 30;
        let author = admin_author(rng);
        parts.push(PartTruth {
            id: ids.next(),
            part_type: "close".into(),
            body: None,
            created_at: at,
            author,
            literal: BTreeMap::new(),
        });
    }
    let updated = parts.last().map_or(created, |p| p.created_at);
    let mut admin_ids: Vec<String> = Vec::new();
    for p in parts.iter().chain([&source]) {
        if p.author.kind == "admin" && !admin_ids.contains(&p.author.id) {
            admin_ids.push(p.author.id.clone());
        }
    }
    let tags = TAGS.iter().filter(|_| rng.random_bool(0.3)).map(|(i, n)| (i.to_string(), n.to_string())).collect();
    let mut custom = serde_json::Map::new();
    if rng.random_bool(0.5) {
        custom.insert("issue_type".into(), json!(["Billing", "Bug", "Account"].choose(rng).expect("types")));
    }
    if rng.random_bool(0.3) {
        custom.insert("order_no".into(), json!(rng.random_range(1000..9999)));
    }
    ConversationTruth {
        id: (2_146_000_000 + index as u64 * 7).to_string(),
        created_at: created,
        updated_at: updated,
        title: rng.random_bool(0.3).then(|| format!("Ticket #{index}")),
        state,
        source,
        delivered_as: if admin_initiated { "admin_initiated" } else { "customer_initiated" }.into(),
        contact,
        admin_assignee_id: admin_ids.first().cloned(),
        admin_ids,
        tags,
        custom_attributes: custom,
        parts,
        literal: BTreeMap::new(),
    }
}

/// The workspace of `config`: the docs' example conversation, `conversations` ordinary ones
/// (0..=`max_parts` parts, created 37 minutes apart from 2026-01-05T07:00:00Z), then the long
/// ones.
pub fn generate(config: &SimConfig) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut ids = Ids(300_000_000);
    let mut conversations = vec![docs_example()];
    for i in 0..config.conversations {
        let n = rng.random_range(0..=config.max_parts);
        conversations.push(conversation(&mut rng, &mut ids, i, n));
    }
    for (j, &n) in config.long_conversations.iter().enumerate() {
        conversations.push(conversation(&mut rng, &mut ids, config.conversations + j, n));
    }
    Dataset { token: config.token.clone(), conversations }
}

/// `n` new comments (the contact's and an admin's, alternating) from `at` (epoch s) on, ids
/// above every generated one (`seed` keeps successive calls apart).
pub(super) fn more_parts(seed: u64, contact: &Author, n: usize, at: i64) -> Vec<PartTruth> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ids = Ids(900_000_000 + seed * 1_000);
    (0..n)
        .map(|i| {
            let (body, author) = if i % 2 == 0 {
                (USER_LINES.choose(&mut rng).expect("user").to_string(), contact.clone())
            } else {
                (ADMIN_LINES.choose(&mut rng).expect("admin").to_string(), admin_author(&mut rng))
            };
            PartTruth {
                id: ids.next(),
                part_type: "comment".into(),
                body: Some(body),
                created_at: at + i as i64 * 60,
                author,
                literal: BTreeMap::new(),
            }
        })
        .collect()
}

/// A new conversation created at `at` (epoch s) with `n` parts (`seed` as in [`more_parts`]).
pub(super) fn new_conversation(seed: u64, n: usize, at: i64) -> ConversationTruth {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ids = Ids(800_000_000 + seed * 1_000);
    let mut c = conversation(&mut rng, &mut ids, 0, n);
    let shift = at - c.created_at;
    c.id = (3_000_000_000 + seed).to_string();
    c.created_at = at;
    c.updated_at += shift;
    c.source.created_at = at;
    for p in &mut c.parts {
        p.created_at += shift;
    }
    c
}
