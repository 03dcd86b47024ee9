//! The deterministic dataset and webhook events.

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// What to generate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the generator: one config, one dataset.
    pub seed: u64,
    /// Number of clients.
    pub clients: usize,
    /// Upper bound on history items (turns) per client.
    pub max_turns: usize,
    /// The channel token the server requires in the path (`<8 alnum>:<40 hex>`).
    pub token: String,
}

impl SimConfig {
    /// The `pipe demo` channel: seed 7, `clients` clients, up to 12 turns each.
    pub fn demo(clients: usize) -> Self {
        SimConfig { seed: 7, clients, max_turns: 12, token: "DemoBot1:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c".into() }
    }
}

/// One message a correct export holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    /// `clientId`.
    pub conversation_id: String,
    /// Position in the conversation (by time).
    pub seq: u32,
    /// `<questionId>:q`, `:r<i>` or `:e`.
    pub message_id: String,
    /// `visitor`, `bot`, `agent` or `system`.
    pub sender_role: String,
    /// `text`, `event`, a reply type, or the item type.
    pub message_type: String,
    /// Text, if any.
    pub text: Option<String>,
    /// `sent_at` in µs since the epoch, UTC.
    pub sent_at_us: i64,
}

/// One client of the channel.
#[derive(Clone, Debug)]
pub struct Client {
    /// The `clientId`.
    pub id: String,
    /// History items, as served, in time order.
    pub items: Vec<Value>,
    /// Sent time of each item, µs UTC (parallel to `items`).
    pub item_times_us: Vec<i64>,
    /// The messages of a full export, in `seq` order.
    pub expected: Vec<Expected>,
    /// Bot sessions (items flagged `newSessionStarted`, the first counting as one).
    pub sessions: u32,
}

/// A generated channel.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The channel token.
    pub token: String,
    /// The token prefix, the canonical `account_id`.
    pub account_id: String,
    /// Every client.
    pub clients: Vec<Client>,
}

impl Dataset {
    /// Every expected message of every client.
    pub fn expected(&self) -> Vec<Expected> {
        self.clients.iter().flat_map(|c| c.expected.iter().cloned()).collect()
    }
}

impl Dataset {
    /// A copy with `turns` new items appended to each client of index in `clients`: the
    /// first shares the timestamp of the client's last item (a tie with the watermark), the
    /// others follow 90 s apart; a visitor query with one text reply, every third an agent
    /// reply. `expected`, `item_times_us` and the session count are updated (no new session).
    /// Returns the copy and the `(clientId, message_id)` keys of the new messages.
    ///
    /// Panics when an index is out of range or a client has no item.
    pub fn with_new_items(&self, clients: &[usize], turns: usize, tag: &str) -> (Dataset, Vec<(String, String)>) {
        let mut d = self.clone();
        let mut keys = Vec::new();
        for &ci in clients {
            let c = &mut d.clients[ci];
            let last = *c.item_times_us.last().expect("client has items");
            for k in 0..turns {
                let t = DateTime::<Utc>::from_timestamp_micros(last).expect("valid time")
                    + Duration::seconds(90 * k as i64);
                let qid = format!("{tag}-{ci}-{k}");
                let seq = c.expected.len() as u32;
                let mut exp = |mid: String, role: &str, text: String, seq: u32| {
                    keys.push((c.id.clone(), mid.clone()));
                    c.expected.push(Expected {
                        conversation_id: c.id.clone(),
                        seq,
                        message_id: mid,
                        sender_role: role.into(),
                        message_type: "text".into(),
                        text: Some(text),
                        sent_at_us: t.timestamp_micros(),
                    });
                };
                let item = if k % 3 == 2 {
                    let text = format!("Agent follow-up {tag} {k}");
                    exp(format!("{qid}:r0"), "agent", text.clone(), seq);
                    json!({"questionId": qid, "timestamp": ts(t), "type": "agentResponse", "response": {"replies": [{"type": "text", "text": text}]}})
                } else {
                    let (q, a) = (format!("Follow-up {tag} {k}"), format!("Reply {tag} {k}"));
                    exp(format!("{qid}:q"), "visitor", q.clone(), seq);
                    exp(format!("{qid}:r0"), "bot", a.clone(), seq + 1);
                    json!({"questionId": qid, "timestamp": ts(t), "query": q, "event": null, "data": null,
                           "response": {"replies": [{"type": "text", "text": a}], "answer": a, "newSessionStarted": false, "endSession": false},
                           "status": "READ"})
                };
                c.items.push(item);
                c.item_times_us.push(t.timestamp_micros());
            }
        }
        (d, keys)
    }
}

impl Dataset {
    /// A copy with shape drift in client `ci` (docs/design.md §6, `unexpected_shape`): its first
    /// reply item loses its `type` (a correct export: `message_type` `text`, the documented
    /// default), and one item with neither request, answer nor `type` is added a second after
    /// the client's last item (exported as `<questionId>:e`, `system`, type `event`). Returns
    /// the copy and the `(clientId, message_id)` of the two messages that drifted.
    ///
    /// Panics when `ci` is out of range or the client has no reply.
    pub fn with_shape_drift(&self, ci: usize) -> (Dataset, Vec<(String, String)>) {
        let mut d = self.clone();
        let c = &mut d.clients[ci];
        let i = c.items.iter().position(|it| it["response"]["replies"].as_array().is_some_and(|r| !r.is_empty()));
        let i = i.expect("the client has a reply");
        c.items[i]["response"]["replies"][0].as_object_mut().expect("a reply object").remove("type");
        let qid = c.items[i]["questionId"].as_str().expect("questionId").to_string();
        let reply = format!("{qid}:r0");
        let e = c.expected.iter_mut().find(|e| e.message_id == reply).expect("the reply is expected");
        e.message_type = "text".into();
        let last = *c.item_times_us.last().expect("client has items");
        let t = DateTime::<Utc>::from_timestamp_micros(last).expect("valid time") + Duration::seconds(1);
        let odd = format!("drift-{ci}");
        c.items.push(json!({"questionId": odd, "timestamp": ts(t)}));
        c.item_times_us.push(t.timestamp_micros());
        c.expected.push(Expected {
            conversation_id: c.id.clone(),
            seq: c.expected.len() as u32,
            message_id: format!("{odd}:e"),
            sender_role: "system".into(),
            message_type: "event".into(),
            text: None,
            sent_at_us: t.timestamp_micros(),
        });
        let keys = vec![(c.id.clone(), reply), (c.id.clone(), format!("{odd}:e"))];
        (d, keys)
    }
}

const START: &str = "2026-02-02T08:00:00Z";
const QUERIES: &[&str] =
    &["Hi", "Где мой заказ?", "I want to change my tariff", "Operator please", "Thanks!", "Can I pay by card?", "🙂"];
const EVENTS: &[&str] = &["/start", "fileEvent", "timeLimit"];

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

/// Client ids: plain, e-mail, Cyrillic with a space, path-hostile, numeric-looking.
fn client_id(i: usize) -> String {
    match i % 6 {
        0 => format!("client-{i}"),
        1 => format!("user{i}@example.com"),
        2 => format!("Иван Петров {i}"),
        3 => format!("tg:{i}/chat 1"),
        4 => format!("{}", 900_000 + i),
        _ => format!("web_{i}_ÄÖ"),
    }
}

/// Generates the channel of `cfg`.
pub fn generate(cfg: &SimConfig) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let start: DateTime<Utc> = START.parse().expect("valid start");
    let mut clients = Vec::new();
    for c in 0..cfg.clients {
        let id = client_id(c);
        let mut t = start + Duration::minutes(rng.random_range(0..600) + c as i64 * 37);
        let turns = rng.random_range(1..=cfg.max_turns.max(1));
        let mut items = Vec::new();
        let mut times = Vec::new();
        let mut expected = Vec::new();
        let mut sessions = 0u32;
        for turn in 0..turns {
            // Two items share a timestamp now and then (ties keep the API's order).
            if turn == 0 || rng.random_range(0..8) != 0 {
                t += Duration::milliseconds(rng.random_range(1_000..400_000));
            }
            let qid = format!("{:08x}-{c}-{turn}", rng.random::<u32>());
            let kind = rng.random_range(0..10);
            let mut exp = |mid: String, role: &str, mt: &str, text: Option<String>| {
                expected.push(Expected {
                    conversation_id: id.clone(),
                    seq: 0,
                    message_id: mid,
                    sender_role: role.into(),
                    message_type: mt.into(),
                    text,
                    sent_at_us: t.timestamp_micros(),
                })
            };
            let item = if kind == 0 && turn > 0 {
                // An agent reply (assumed shape, §2.5).
                let text = format!("Hi, this is Anna from support ({turn})");
                exp(format!("{qid}:r0"), "agent", "text", Some(text.clone()));
                json!({"questionId": qid, "timestamp": ts(t), "type": "agentResponse",
                       "response": {"replies": [{"type": "text", "text": text}]}})
            } else if kind == 1 && turn > 0 {
                // Neither request nor answer.
                exp(format!("{qid}:e"), "system", "widgetstate", None);
                json!({"questionId": qid, "timestamp": ts(t), "type": "widgetState", "data": {"open": true}})
            } else {
                let new_session = turn == 0 || rng.random_range(0..5) == 0;
                if turn == 0 || new_session {
                    sessions += 1;
                }
                let (query, event) = if rng.random_range(0..5) == 0 {
                    (Value::Null, Value::String(EVENTS[rng.random_range(0..EVENTS.len())].into()))
                } else {
                    (Value::String(QUERIES[rng.random_range(0..QUERIES.len())].into()), Value::Null)
                };
                match (&query, &event) {
                    (Value::String(q), _) => exp(format!("{qid}:q"), "visitor", "text", Some(q.clone())),
                    (_, Value::String(e)) => exp(format!("{qid}:q"), "visitor", "event", Some(e.clone())),
                    _ => unreachable!(),
                }
                let mut replies = Vec::new();
                for r in 0..rng.random_range(1..=3) {
                    let reply = match rng.random_range(0..6) {
                        0 => json!({"type": "buttons", "buttons": [{"text": "Yes"}, {"text": "No"}]}),
                        1 => {
                            json!({"type": "image", "imageUrl": format!("https://img.example/{c}/{turn}.png"), "text": "a picture"})
                        }
                        2 => {
                            json!({"type": "carousel", "text": "Pick one", "content": [{"image": "https://img.example/x.png", "title": "X", "url": "https://x.example", "btnText": "Go"}]})
                        }
                        3 => json!({"type": "Raw", "body": {"anything": [1, 2]}}),
                        _ => json!({"type": "text", "text": format!("Answer {turn}.{r} for {id}"), "state": "/Start"}),
                    };
                    let rtype = reply["type"].as_str().unwrap().to_ascii_lowercase();
                    exp(
                        format!("{qid}:r{r}"),
                        "bot",
                        &rtype,
                        reply.get("text").and_then(Value::as_str).map(str::to_string),
                    );
                    replies.push(reply);
                }
                let answer =
                    replies.iter().filter_map(|r| r.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n");
                json!({"questionId": qid, "timestamp": ts(t), "query": query, "event": event, "data": null,
                       "response": {"replies": replies, "answer": answer, "newSessionStarted": new_session, "endSession": turn + 1 == turns},
                       "status": "READ"})
            };
            items.push(item);
            times.push(t.timestamp_micros());
        }
        if sessions == 0 {
            sessions = 1;
        }
        for (i, e) in expected.iter_mut().enumerate() {
            e.seq = i as u32;
        }
        clients.push(Client { id, items, item_times_us: times, expected, sessions });
    }
    let account_id = cfg.token.split(':').next().unwrap_or_default().to_string();
    Dataset { token: cfg.token.clone(), account_id, clients }
}

/// `n` webhook objects (§2.3: `token`, `clientId`, `questionId`, `data{replies, answer,
/// nlpClass, confidence, newSessionStarted, endSession}`, `timestamp`), each with a unique
/// `questionId` and one or two text replies; every 7th is an agent reply, and of the others
/// those at `i % 3 == 2` carry no `query` (the seed's object has none). Returns the events
/// and the `(clientId, message_id)` keys a correct listener emits for them.
pub fn webhook_events(token: &str, n: usize, seed: u64) -> (Vec<Value>, Vec<(String, String)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start: DateTime<Utc> = START.parse().expect("valid start");
    let mut events = Vec::new();
    let mut keys = Vec::new();
    for i in 0..n {
        let client = client_id(i % 9);
        let qid = format!("wh-{seed}-{i}");
        let t = start + Duration::milliseconds(i as i64 * 1500);
        let replies: Vec<Value> = (0..rng.random_range(1..=2))
            .map(|r| json!({"type": "text", "text": format!("reply {i}.{r}"), "state": "/CatchAll"}))
            .collect();
        let agent = i % 7 == 6;
        let mut ev = json!({"token": token, "clientId": client, "questionId": qid,
            "data": {"nlpClass": "/CatchAll", "confidence": -0.011, "replies": replies, "answer": "",
                     "newSessionStarted": i % 5 == 0, "debugData": [], "endSession": false},
            "timestamp": ts(t), "blockForm": false});
        if agent {
            ev["type"] = json!("agentResponse");
        } else if i % 3 != 2 {
            ev["query"] = json!(format!("question {i}"));
            keys.push((client.clone(), format!("{qid}:q")));
        }
        // Every third other event has no `query`, like the help page's own webhook object:
        // a correct listener emits its replies and no visitor message.
        for r in 0..replies.len() {
            keys.push((client.clone(), format!("{qid}:r{r}")));
        }
        events.push(ev);
    }
    (events, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_varied() {
        let a = generate(&SimConfig::demo(30));
        let b = generate(&SimConfig::demo(30));
        assert_eq!(a.expected(), b.expected());
        let roles: std::collections::BTreeSet<_> = a.expected().iter().map(|e| e.sender_role.clone()).collect();
        assert_eq!(roles.len(), 4, "{roles:?}");
        assert!(a.clients.iter().any(|c| c.sessions > 1));
    }
}
