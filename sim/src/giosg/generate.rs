//! Deterministic dataset generation.
//!
//! Each chat is first drawn as a plain timeline ([`Draft`]: events with millisecond times,
//! senders and texts), then truncated, purged, encrypted and finally rendered into the exact
//! JSON objects the server sends. Keeping the timeline separate from the JSON makes the derived
//! fields (counts, flags, durations, memberships) easy to compute consistently.
//!
//! Which chats show which edge case is partly fixed by the chat's index (so even a 20-chat
//! dataset has open, purged, unanswered, encrypted, naive-timestamp and 2000-character cases)
//! and partly random.

use super::corpus::{self, Lang};
use super::crypto::{ChatKey, CustomerKey};
use super::{ChatTruth, Dataset, MessageTruth, SimConfig, format_timestamp, parse_timestamp};
use chrono::{DateTime, Utc};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// giosg's maximum message length, in characters.
const MAX_TEXT_CHARS: usize = 2000;

/// Generates the dataset for `cfg`; see [`SimConfig`] for what is deterministic.
pub fn generate(cfg: &SimConfig) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let org = Org::draw(&mut rng, &cfg.organization_id);
    let is_encrypted = |i: usize| cfg.encrypted_every > 0 && i % cfg.encrypted_every == cfg.encrypted_every - 1;
    // One RSA key per dataset (the customer's key); only made when needed, as keygen is the
    // slowest step of generation.
    let customer = (0..cfg.chats).any(is_encrypted).then(CustomerKey::generate);

    let mut created = parse_timestamp(super::EPOCH).expect("valid epoch").timestamp_millis();
    let mut chats = Vec::with_capacity(cfg.chats);
    for index in 0..cfg.chats {
        if index > 0 {
            created += rng.random_range(MINUTE..cfg.max_chat_gap_ms.max(MINUTE + 1));
        }
        let key = if is_encrypted(index) { customer.as_ref() } else { None };
        let draft = Draft::draw(&mut rng, &org, cfg, index, created, key.is_some());
        chats.push(draft.render(&mut rng, &org, key));
    }
    Dataset {
        organization_id: cfg.organization_id.clone(),
        token: cfg.token.clone(),
        chats,
        private_key_pkcs8_pem: customer.map(|c| c.private_key_pkcs8_pem()).unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Organization: rooms, users, rules and the tag catalog, shared by all chats.

struct Room {
    id: String,
    name: &'static str,
    legacy_id: String,
}

struct User {
    id: String,
    name: &'static str,
    public_name: &'static str,
    is_bot: bool,
    avatar: Value,
    legacy_id: String,
}

struct Rule {
    id: String,
    name: &'static str,
    public_name: &'static str,
}

struct Org {
    id: String,
    rooms: Vec<Room>,
    users: Vec<User>,
    rules: Vec<Rule>,
    /// (tag id, name): the catalog tags, then one `Language: xx` tag per language.
    tags: Vec<(String, String)>,
}

impl Org {
    fn draw(rng: &mut ChaCha8Rng, org_id: &str) -> Self {
        let rooms = corpus::ROOMS.iter().map(|&name| Room { id: uuid(rng), name, legacy_id: legacy_id(rng) }).collect();
        let users = corpus::USERS
            .iter()
            .map(|&(name, public_name, is_bot, has_avatar)| {
                let id = uuid(rng);
                let avatar = if has_avatar {
                    let avatar_id = uuid(rng);
                    json!({"id": avatar_id, "url": format!("https://cdn.example.com/avatars/{avatar_id}.jpeg")})
                } else {
                    Value::Null
                };
                User { id, name, public_name, is_bot, avatar, legacy_id: legacy_id(rng) }
            })
            .collect();
        let rules =
            corpus::RULES.iter().map(|&(name, public_name)| Rule { id: uuid(rng), name, public_name }).collect();
        let mut tags: Vec<(String, String)> = corpus::TAGS.iter().map(|n| (uuid(rng), n.to_string())).collect();
        for lang in [Lang::En, Lang::Fi, Lang::Ru, Lang::Ja, Lang::Zh] {
            tags.push((uuid(rng), format!("Language: {}", lang.code())));
        }
        Org { id: org_id.to_owned(), rooms, users, rules, tags }
    }

    fn language_tag(&self, lang: Lang) -> usize {
        let name = format!("Language: {}", lang.code());
        self.tags.iter().position(|(_, n)| *n == name).expect("language tags exist")
    }
}

// ---------------------------------------------------------------------------------------------
// Draft: one chat as a timeline.

/// How far a chat got.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Visitor and operator(s) talked.
    Normal,
    /// The visitor wrote but no operator ever joined.
    Unanswered,
    /// Only an automation rule's invitation; the visitor never wrote.
    AutosuggestOnly,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sender {
    Visitor,
    User(usize),
    Rule(usize),
}

/// A visitor's click on an autosuggest button.
struct ButtonClick {
    message_id: String,
    attachment: Value,
    action: Value,
}

struct Event {
    id: String,
    kind: &'static str,
    sender: Sender,
    at: i64,
    text: Option<String>,
    naive: bool,
    attachments: Vec<Value>,
    click: Option<ButtonClick>,
}

/// A user's membership in the chat: when they joined (None = assigned but never joined).
struct Member {
    user: usize,
    joined: Option<i64>,
    left: Option<i64>,
}

struct Draft {
    index: usize,
    id: String,
    visitor_id: String,
    lang: Lang,
    room: usize,
    shape: Shape,
    open: bool,
    naive: bool,
    purged: bool,
    encrypted: bool,
    created: i64,
    waiting_started: Option<i64>,
    page: Option<(&'static str, &'static str)>,
    autosuggested: bool,
    events: Vec<Event>,
    members: Vec<Member>,
    /// (index into `Org::tags`, created_at)
    tags: Vec<(usize, i64)>,
    variables: Vec<(&'static str, String)>,
}

impl Draft {
    fn draw(rng: &mut ChaCha8Rng, org: &Org, cfg: &SimConfig, index: usize, created: i64, encrypted: bool) -> Self {
        let lang = *Lang::WEIGHTED.choose(rng).expect("non-empty");
        let shape = match () {
            _ if index % 17 == 16 => Shape::AutosuggestOnly,
            _ if index % 13 == 12 => Shape::Unanswered,
            _ => Shape::Normal,
        };
        // Open chats are mostly the newest ones, plus old "ghost" chats nobody closed.
        let open = index % 8 == 6 || (index + 1 == cfg.chats && index >= 3);
        let mut d = Draft {
            index,
            id: uuid(rng),
            visitor_id: hex32(rng),
            lang,
            room: if encrypted { corpus::ENCRYPTED_ROOM } else { lang.room() },
            shape,
            open,
            naive: index % 7 == 3,
            purged: !open && index % 9 == 4,
            encrypted,
            created,
            waiting_started: None,
            page: Some(*corpus::PAGES.choose(rng).expect("non-empty")),
            autosuggested: false,
            events: Vec::new(),
            members: Vec::new(),
            tags: Vec::new(),
            variables: Vec::new(),
        };
        d.draw_variables(rng);
        d.draw_timeline(rng, org, cfg);
        d
    }

    fn draw_variables(&mut self, rng: &mut ChaCha8Rng) {
        let n = rng.random_range(0..=4usize);
        let mut keys = ["username", "email", "customer_id", "plan"];
        // `username` is the most common variable (it names the visitor), so it leads when any.
        if rng.random_bool(0.2) {
            keys.rotate_left(1);
        }
        for &key in keys.iter().take(n) {
            let value = match key {
                "username" => self.lang.lines().names.choose(rng).expect("names").to_string(),
                "email" => format!("customer{}@example.com", rng.random_range(100..1000)),
                "customer_id" => format!("C-{:05}", rng.random_range(0..100_000)),
                _ => ["free", "pro", "enterprise"].choose(rng).expect("plans").to_string(),
            };
            self.variables.push((key, value));
        }
    }

    fn username(&self) -> Option<&str> {
        self.variables.iter().find(|(k, _)| *k == "username").map(|(_, v)| v.as_str())
    }

    fn push(&mut self, rng: &mut ChaCha8Rng, kind: &'static str, sender: Sender, at: i64, text: Option<String>) {
        // Some chats mix in the old naive timestamp form (no `Z`) per message.
        let naive = if self.index % 5 == 2 { rng.random_bool(0.3) } else { rng.random_bool(0.01) };
        self.events.push(Event { id: uuid(rng), kind, sender, at, text, naive, attachments: vec![], click: None });
    }

    /// Picks an operator other than `not`; a bot ~15% of the time.
    fn pick_user(rng: &mut ChaCha8Rng, org: &Org, not: Option<usize>) -> usize {
        let want_bot = rng.random_bool(0.15);
        let pool: Vec<usize> = (0..org.users.len()).filter(|&u| Some(u) != not).collect();
        let preferred: Vec<usize> = pool.iter().copied().filter(|&u| org.users[u].is_bot == want_bot).collect();
        *preferred.choose(rng).or_else(|| pool.choose(rng)).expect("at least two users")
    }

    fn draw_timeline(&mut self, rng: &mut ChaCha8Rng, org: &Org, cfg: &SimConfig) {
        let lines = self.lang.lines();
        let mut t = self.created + rng.random_range(200..3 * SECOND);

        // 1. Proactive invitation by an automation rule, sometimes with buttons.
        self.autosuggested = self.shape == Shape::AutosuggestOnly || rng.random_bool(0.35);
        let mut buttons: Option<(String, Value)> = None;
        if self.autosuggested {
            let rule = rng.random_range(0..org.rules.len());
            let text = lines.autosuggest.choose(rng).expect("lines").to_string();
            self.push(rng, "autosuggest", Sender::Rule(rule), t, Some(text));
            if rng.random_bool(0.5) {
                let attachment = button_attachment(rng);
                let last = self.events.last_mut().expect("just pushed");
                last.attachments.push(attachment.clone());
                buttons = Some((last.id.clone(), attachment));
            }
            t += rng.random_range(5 * SECOND..2 * MINUTE);
        }

        // 2. The visitor writes (possibly by clicking a button) and starts waiting.
        if self.shape != Shape::AutosuggestOnly {
            match buttons {
                Some((message_id, attachment)) if rng.random_bool(0.6) => {
                    let actions = attachment["actions"].as_array().expect("actions");
                    let action = actions.choose(rng).expect("buttons").clone();
                    let text = action["text"].as_str().map(str::to_owned);
                    self.push(rng, "msg", Sender::Visitor, t, text);
                    self.events.last_mut().expect("just pushed").click =
                        Some(ButtonClick { message_id, attachment, action });
                }
                _ => {
                    let text = lines.visitor_open.choose(rng).expect("lines").to_string();
                    self.push(rng, "msg", Sender::Visitor, t, Some(text));
                }
            }
            self.waiting_started = Some(t + rng.random_range(20..80));
            if rng.random_bool(0.3) || self.shape == Shape::Unanswered {
                t += rng.random_range(5 * SECOND..MINUTE);
                let text = lines.visitor.choose(rng).expect("lines").to_string();
                self.push(rng, "msg", Sender::Visitor, t, Some(text));
            }
        }

        // 3. Operators join, talk, maybe hand over, tag and leave.
        let mut current = None;
        if self.shape == Shape::Normal {
            let first = Self::pick_user(rng, org, None);
            t += rng.random_range(3 * SECOND..3 * MINUTE);
            self.join(rng, first, t);
            current = Some(first);
            if rng.random_bool(0.1) {
                // Automation rules can also send ordinary `msg`s; they count in `message_count`
                // but in neither `user_message_count` nor `visitor_message_count`.
                t += rng.random_range(SECOND..5 * SECOND);
                let rule = rng.random_range(0..org.rules.len());
                let text = lines.agent.choose(rng).expect("lines").to_string();
                self.push(rng, "msg", Sender::Rule(rule), t, Some(text));
            }
            let body = rng.random_range(1..=(cfg.max_messages_per_chat * 3 / 4).max(1));
            let handover_at = if rng.random_bool(0.2) { Some(body / 2) } else { None };
            let mut agent_turn = true;
            for i in 0..body {
                if Some(i) == handover_at {
                    let prev = current.expect("an operator is present");
                    let next = Self::pick_user(rng, org, Some(prev));
                    t += rng.random_range(5 * SECOND..MINUTE);
                    self.join(rng, next, t);
                    if rng.random_bool(0.6) {
                        t += rng.random_range(SECOND..10 * SECOND);
                        self.leave(rng, prev, t);
                    }
                    current = Some(next);
                }
                t += rng.random_range(2 * SECOND..90 * SECOND);
                let (sender, pool) = if agent_turn {
                    (Sender::User(current.expect("present")), lines.agent)
                } else {
                    (Sender::Visitor, lines.visitor)
                };
                let text = pool.choose(rng).expect("lines").to_string();
                self.push(rng, "msg", sender, t, Some(text));
                // Mostly alternate, sometimes one side sends several messages in a row.
                if rng.random_bool(0.75) {
                    agent_turn = !agent_turn;
                }
            }
            if self.members.len() < 3 && rng.random_bool(0.15) {
                // A supervisor who was added to the chat but never spoke.
                let joined: Vec<usize> = self.members.iter().map(|m| m.user).collect();
                let user = (0..org.users.len()).find(|u| !joined.contains(u) && !org.users[*u].is_bot);
                if let Some(user) = user {
                    self.members.push(Member { user, joined: None, left: None });
                }
            }
        } else {
            // Assigned to the room's operator queue, but nobody ever joined.
            let user = Self::pick_user(rng, org, None);
            self.members.push(Member { user, joined: None, left: None });
        }

        // 4. Tags, some announced by a `tag_created` message whose text is the tag name.
        let n_tags = rng.random_range(0..=3usize);
        let mut tag_ids: Vec<usize> = Vec::new();
        if n_tags > 0 && rng.random_bool(0.6) {
            tag_ids.push(org.language_tag(self.lang));
        }
        while tag_ids.len() < n_tags {
            let tag = rng.random_range(0..corpus::TAGS.len());
            if !tag_ids.contains(&tag) {
                tag_ids.push(tag);
            }
        }
        for tag in tag_ids {
            t += rng.random_range(SECOND..20 * SECOND);
            self.tags.push((tag, t));
            if let Some(user) = current.filter(|_| rng.random_bool(0.6)) {
                let name = org.tags[tag].1.clone();
                self.push(rng, "tag_created", Sender::User(user), t, Some(name));
            }
        }

        // 5. Closing: operators leave ended chats.
        if !self.open {
            let present: Vec<usize> =
                self.members.iter().filter(|m| m.joined.is_some() && m.left.is_none()).map(|m| m.user).collect();
            for user in present {
                t += rng.random_range(SECOND..30 * SECOND);
                self.leave(rng, user, t);
            }
        }

        self.add_long_texts(rng);
        self.events.truncate(cfg.max_messages_per_chat);
    }

    fn join(&mut self, rng: &mut ChaCha8Rng, user: usize, at: i64) {
        self.push(rng, "join", Sender::User(user), at, None);
        self.members.push(Member { user, joined: Some(at), left: None });
    }

    fn leave(&mut self, rng: &mut ChaCha8Rng, user: usize, at: i64) {
        self.push(rng, "leave", Sender::User(user), at, None);
        if let Some(m) = self.members.iter_mut().find(|m| m.user == user && m.left.is_none()) {
            m.left = Some(at);
        }
    }

    /// Makes some `msg` texts exactly [`MAX_TEXT_CHARS`] characters long: one per tenth chat for
    /// certain, and rarely anywhere else.
    fn add_long_texts(&mut self, rng: &mut ChaCha8Rng) {
        let long = self.lang.lines().long;
        let forced = self.index % 10 == 1;
        let msgs: Vec<usize> = (0..self.events.len()).filter(|&i| self.events[i].kind == "msg").collect();
        let pick = if forced { msgs.choose(rng).copied() } else { None };
        for i in msgs {
            if Some(i) == pick || rng.random_bool(0.01) {
                let prefix = format!("({}) ", i + 1);
                let text: String = prefix.chars().chain(long.chars().cycle()).take(MAX_TEXT_CHARS).collect();
                self.events[i].text = Some(text);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Rendering into served JSON.

    fn render(self, rng: &mut ChaCha8Rng, org: &Org, customer: Option<&CustomerKey>) -> ChatTruth {
        let room = &org.rooms[self.room];
        let last_event = self.events.last().map(|e| e.at).unwrap_or(self.created);
        let last_tag = self.tags.iter().map(|&(_, at)| at).max().unwrap_or(self.created);
        let last_activity = last_event.max(last_tag);
        let ended_at = (!self.open).then(|| last_activity + rng.random_range(SECOND..MINUTE));
        // A GDPR purge happens weeks later and is itself a change of the chat.
        let purged_at = ended_at.filter(|_| self.purged).map(|e| e + rng.random_range(20 * DAY..40 * DAY));
        let updated_at = purged_at.or(ended_at).unwrap_or(last_activity) + rng.random_range(5..20);
        let ts = |ms: i64| format_timestamp(millis(ms), self.naive);

        // Chat key: one per encrypted chat, RSA-wrapped with the customer's public key.
        let chat_key = customer.map(|c| {
            let key = ChatKey::random();
            let wrapped = c.wrap(key.key_json().as_bytes());
            (key, wrapped)
        });

        let messages: Vec<MessageTruth> = self
            .events
            .iter()
            .map(|e| self.render_message(e, org, chat_key.as_ref().map(|(k, _)| k), purged_at))
            .collect();

        let count = |f: &dyn Fn(&Event) -> bool| self.events.iter().filter(|e| e.kind == "msg" && f(e)).count();
        let message_count = count(&|_| true);
        let user_message_count = count(&|e| matches!(e.sender, Sender::User(_)));
        let visitor_message_count = count(&|e| e.sender == Sender::Visitor);

        let memberships = self.render_memberships(rng, org, updated_at);
        let present =
            |kind: &str| memberships.iter().filter(|m| m["member_type"] == kind && m["is_present"] == true).count();
        let (present_users, present_visitors) = (present("user"), present("visitor"));
        let user_members = memberships.len() - 1;

        let first_join = self.members.iter().filter_map(|m| m.joined).min();
        let visitor_wait = match (self.waiting_started, first_join) {
            (Some(w), Some(j)) => json!(secs(j - w, rng)),
            _ => Value::Null,
        };
        let (duration, active_duration) = match ended_at {
            Some(end) => {
                let total = secs(end - self.created, rng);
                let active = (total * rng.random_range(0.3..1.0) * 1e6).round() / 1e6;
                (json!(total), json!(active))
            }
            None => (Value::Null, Value::Null),
        };
        let visitor_wrote = visitor_message_count > 0;
        let is_waiting = self.open && self.shape == Shape::Unanswered;
        let state = match () {
            _ if !self.open => "closed",
            _ if is_waiting => "waiting",
            _ => "chat",
        };
        let page_or_null = |on: bool, f: fn((&'static str, &'static str)) -> &'static str| {
            self.page.filter(|_| on).map(f).map_or(Value::Null, |s| json!(s))
        };

        let mut chat = json!({
            "id": self.id,
            "chat_type": "visitor",
            "created_at": ts(self.created),
            "updated_at": ts(updated_at),
            "ended_at": ended_at.map(ts),
            "waiting_started_at": self.waiting_started.map(ts),
            "room_id": room.id,
            "room_name": room.name,
            "room_organization_id": org.id,
            "tag_count": self.tags.len(),
            "message_count": message_count,
            "user_message_count": user_message_count,
            "visitor_message_count": visitor_message_count,
            "has_messages": message_count > 0,
            "has_user_messages": user_message_count > 0,
            "has_visitor_messages": visitor_message_count > 0,
            "present_participant_count": present_users + present_visitors,
            "present_user_participant_count": present_users,
            "present_visitor_participant_count": present_visitors,
            "member_count": memberships.len(),
            "user_member_count": user_members,
            "visitor_member_count": 1,
            "is_private": false,
            "is_real_conversation": user_message_count > 0 && visitor_message_count > 0,
            "is_autosuggested": self.autosuggested,
            "is_waiting": is_waiting,
            "is_pending": false,
            "is_ended": !self.open,
            "is_encrypted": self.encrypted,
            "autosuggest_url": page_or_null(self.autosuggested, |p| p.0),
            "autosuggest_url_title": page_or_null(self.autosuggested, |p| p.1),
            "first_visitor_message_url": page_or_null(visitor_wrote, |p| p.0),
            "first_visitor_message_url_title": page_or_null(visitor_wrote, |p| p.1),
            "token": legacy_id(rng),
            "legacy_conversation_state": state,
            "legacy_room_id": room.legacy_id,
            "legacy_id": legacy_id(rng),
            "visitor_wait_time": visitor_wait,
            "duration": duration,
            "active_duration": active_duration,
        });
        if let Some((_, wrapped)) = chat_key {
            chat["encrypted_symmetric_key"] = json!(wrapped);
        }

        let tags = self
            .tags
            .iter()
            .map(|&(tag, at)| json!({"id": org.tags[tag].0, "name": org.tags[tag].1, "created_at": ts(at)}))
            .collect();
        let variables = self.variables.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        ChatTruth { chat, messages, memberships, tags, variables }
    }

    fn render_message(&self, e: &Event, org: &Org, key: Option<&ChatKey>, purged_at: Option<i64>) -> MessageTruth {
        let room = &org.rooms[self.room];
        let (sender_type, sender_id, public_name, name, avatar) = match e.sender {
            Sender::Visitor => ("visitor", self.visitor_id.clone(), Value::Null, json!(self.username()), Value::Null),
            Sender::User(u) => {
                let u = &org.users[u];
                ("user", u.id.clone(), json!(u.public_name), json!(u.name), u.avatar.clone())
            }
            Sender::Rule(r) => {
                let r = &org.rules[r];
                ("rule", r.id.clone(), json!(r.public_name), json!(r.name), Value::Null)
            }
        };
        // Purging removes the content of what people wrote; join/leave/tag events keep theirs.
        let purged = purged_at.filter(|_| matches!(e.kind, "msg" | "autosuggest"));
        let plaintext = e.text.clone().filter(|_| purged.is_none());
        let click = e.click.as_ref();
        let mut json = json!({
            "id": e.id,
            "type": e.kind,
            "chat_id": self.id,
            "room_id": room.id,
            "created_at": format_timestamp(millis(e.at), e.naive),
            "sender_type": sender_type,
            "sender_id": sender_id,
            "sender_public_name": public_name,
            "sender_name": name,
            "sender_avatar": avatar,
            "message": if key.is_some() { None } else { plaintext.clone() },
            "is_encrypted": key.is_some(),
            "sensitive_data_purged_at": purged.map(|p| format_timestamp(millis(p), false)),
            "selected_reply_suggestion_id": null,
            "selected_reply_suggestion": null,
            "attachments": e.attachments,
            "attachment_template": null,
            "response_to_message_id": click.map(|c| c.message_id.clone()),
            "response_to_attachment_id": click.map(|c| c.attachment["id"].clone()),
            "response_to_attachment": click.map(|c| c.attachment.clone()),
            "response_to_action_id": click.map(|c| c.action["id"].clone()),
            "response_to_action": click.map(|c| c.action.clone()),
            "response_text": click.map(|c| c.action["text"].clone()),
            "response_value": click.map(|c| c.action["value"].clone()),
        });
        // `encrypted_message` exists only where there is content: absent (not null) on
        // join/leave and on purged messages, exactly like giosg.
        if let (Some(key), Some(text)) = (key, &plaintext) {
            json["encrypted_message"] = json!(key.encrypt(text));
        }
        MessageTruth { json, plaintext }
    }

    fn render_memberships(&self, rng: &mut ChaCha8Rng, org: &Org, updated_at: i64) -> Vec<Value> {
        let room = &org.rooms[self.room];
        let ts = |ms: i64| format_timestamp(millis(ms), self.naive);
        let sent_by = |s: Sender| self.events.iter().filter(|e| e.kind == "msg" && e.sender == s).count();
        let first_visitor = self.events.iter().find(|e| e.sender == Sender::Visitor).map(|e| e.at);
        let mut out = vec![json!({
            "member_id": self.visitor_id,
            "member_type": "visitor",
            "member_name": self.username(),
            "member_public_name": null,
            "member_avatar": null,
            "room_id": room.id,
            "chat_id": self.id,
            "created_at": ts(first_visitor.unwrap_or(self.created)),
            "updated_at": ts(updated_at),
            "is_participating": self.open,
            "is_present": self.open,
            "composing_status": "idle",
            "message_count": sent_by(Sender::Visitor),
            "room_organization_id": org.id,
            "member_organization_id": null,
            "legacy_member_id": legacy_id(rng),
        })];
        for m in &self.members {
            let u = &org.users[m.user];
            let here = self.open && m.joined.is_some() && m.left.is_none();
            out.push(json!({
                "member_id": u.id,
                "member_type": "user",
                "member_name": u.name,
                "member_public_name": u.public_name,
                "member_avatar": u.avatar,
                "room_id": room.id,
                "chat_id": self.id,
                "created_at": ts(m.joined.unwrap_or(self.created)),
                "updated_at": ts(m.left.unwrap_or(updated_at)),
                "is_participating": here,
                "is_present": here,
                "composing_status": "idle",
                "message_count": sent_by(Sender::User(m.user)),
                "room_organization_id": org.id,
                "member_organization_id": org.id,
                "legacy_member_id": u.legacy_id,
            }));
        }
        out
    }
}

/// An autosuggest attachment with the visitor-clickable buttons of [`corpus::BUTTONS`].
fn button_attachment(rng: &mut ChaCha8Rng) -> Value {
    let actions: Vec<Value> = corpus::BUTTONS
        .iter()
        .map(|&(text, value)| {
            json!({
                "id": uuid(rng), "text": text, "type": "button", "link_target": null, "value": value,
                "style": "brand_primary", "is_disabled_on_selection": true, "is_disabled_on_visitor_message": false,
            })
        })
        .collect();
    json!({
        "id": uuid(rng), "title": "How can we help?", "title_link_url": null, "text": null,
        "image_url": null, "image_link_url": null, "link_target": null, "actions": actions,
    })
}

// ---------------------------------------------------------------------------------------------
// Small deterministic helpers.

/// A lower-case hyphenated UUID (v4 layout) from the seeded RNG.
fn uuid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid().to_string()
}

/// 32 lower-case hex chars without dashes: the giosg visitor id format.
fn hex32(rng: &mut ChaCha8Rng) -> String {
    let bytes: [u8; 16] = rng.random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 48 chars of lower-case base32, the shape of giosg's legacy ids and chat tokens.
fn legacy_id(rng: &mut ChaCha8Rng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..48).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("timestamp in range")
}

/// A millisecond span as float seconds with microsecond digits, like giosg's durations.
fn secs(ms: i64, rng: &mut ChaCha8Rng) -> f64 {
    (ms * 1000 + rng.random_range(0..1000)) as f64 / 1e6
}
