//! Deterministic project generation: apps, categories, users, conversations and their chats.

use std::collections::BTreeMap;

use base64::Engine as _;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{App, ChatTruth, ConversationTruth, Dataset, EPOCH_MS, Sender, SimConfig, UserTruth};

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

const USER_LINES: &[&str] = &[
    "How many days of annual leave do I have?",
    "연차 휴가는 며칠인가요?",
    "Can I carry over unused vacation days to next year?",
    "経費精算の締め日はいつですか？",
    "My laptop won't connect to the VPN 😩",
    "Where do I find the travel policy?",
    "Talk to an agent",
    "Is parental leave paid?\nAnd for how long?",
    "Thanks! 👍",
    "What's the reimbursement limit for \"client dinners\" & taxis?",
    "비밀번호를 잊어버렸어요",
    "ok",
];

const BOT_LINES: &[&str] = &[
    "You have **15 days** of annual leave per year.",
    "연차 휴가는 연 15일입니다.\n근속 연수에 따라 추가됩니다.",
    "Unused days can be carried over up to 5 days.\nThey expire at the end of March.",
    "経費精算の締め日は毎月25日です。",
    "Please try reconnecting with the *Alli VPN* profile:\n1. Open Settings\n2. Choose Network → VPN\n3. Select \"Alli VPN\"",
    "The travel policy is in the HR handbook, section 4.2.",
    "Let me connect you with an agent. 🙋",
    "Parental leave is paid for 12 weeks.",
    "You're welcome! Anything else?",
    "{\"status\":\"ok\"}",
    "Client dinners up to €80 per person; taxis with a receipt & a reason.",
    "비밀번호는 로그인 화면의 '비밀번호 찾기'에서 재설정할 수 있어요.",
];

const AGENT_LINES: &[&str] = &[
    "Hello, this is Anna from HR. Let me check that for you.",
    "I've reset your VPN certificate; please try again.",
    "안녕하세요, 담당자 김민준입니다.",
    "That's correct — 12 weeks, fully paid.",
    "I'll close this conversation now. Have a good day!",
];

const AGENTS: &[&str] = &["Anna", "김민준", "Sato Yui", "Ben O'Neil"];

const FIRST_NAMES: &[&str] = &["Pocoyo", "Minji", "Haruto", "Emma", "Jae-won", "Liam", "Sakura", "Olivia", ""];
const LAST_NAMES: &[&str] = &["", "Kim", "Tanaka", "Smith", "Park", "García"];

const TITLES: &[&str] =
    &["Annual leave policy", "VPN trouble", "경비 처리 문의", "Parental leave", "New conversation", ""];

const STATES: &[&str] = &[
    "END_BY_USER",
    "END_OF_CHATBOT",
    "END_BY_AGENT",
    "WAIT_USER_ANSWER",
    "WAIT_AGENT",
    "INIT",
    "END_BY_USER",
    "INTERRUPTED",
];

const CATEGORIES: &[&str] = &["HR", "IT support", "경비", "Travel"];

const OPTIONS: &[&str] = &["Yes", "No", "Talk to an agent", "Pricing"];

fn hex24(rng: &mut ChaCha8Rng) -> String {
    (0..12).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
}

/// A Relay global id: base64 of `"<Type>:<24 hex>"`.
fn global_id(rng: &mut ChaCha8Rng, type_name: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{type_name}:{}", hex24(rng)))
}

/// Generates the project for `cfg`.
pub fn generate(cfg: &SimConfig) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let apps: Vec<App> =
        [("HR assistant", "Answers HR policy questions"), ("IT helpdesk", ""), ("Expense bot", "경비 처리 도우미")]
            .iter()
            .map(|(name, description)| App {
                id: global_id(&mut rng, "LLMApp"),
                name: name.to_string(),
                description: description.to_string(),
            })
            .collect();
    let categories: Vec<(String, String)> =
        CATEGORIES.iter().map(|name| (global_id(&mut rng, "ConversationCategory"), name.to_string())).collect();
    let users: Vec<UserTruth> = (0..40)
        .map(|i| UserTruth {
            id: global_id(&mut rng, "User"),
            own_user_id: format!("emp-{:05}", 1000 + i * 7),
            first_name: FIRST_NAMES.choose(&mut rng).expect("names").to_string(),
            last_name: LAST_NAMES.choose(&mut rng).expect("names").to_string(),
        })
        .collect();

    // Long conversations are spread evenly among the ordinary ones.
    let total = cfg.conversations + cfg.long_conversations.len();
    let mut long_at: BTreeMap<usize, usize> = BTreeMap::new();
    for (k, n) in cfg.long_conversations.iter().enumerate() {
        long_at.insert((k + 1) * total / (cfg.long_conversations.len() + 1), *n);
    }

    let mut created = EPOCH_MS;
    let mut conversations = Vec::with_capacity(total);
    for index in 0..total {
        if index > 0 {
            created += rng.random_range(MINUTE..3 * HOUR);
        }
        let chat_count = match long_at.get(&index) {
            Some(n) => *n,
            // One conversation without any chat (a user opened the widget and left).
            None if index == 1 => 0,
            None => rng.random_range(1..=cfg.max_chats.max(1)),
        };
        let mut chats = Vec::with_capacity(chat_count);
        let mut t = created + rng.random_range(0..5 * SECOND);
        let mut with_agent = false;
        for k in 0..chat_count {
            if k > 0 {
                t += rng.random_range(SECOND..4 * MINUTE);
            }
            let sender = match (k % 2, rng.random_range(0..10)) {
                (0, _) => Sender::User,
                (_, 0..=1) => {
                    with_agent = true;
                    Sender::Agent
                }
                (_, _) if with_agent && rng.random_bool(0.5) => Sender::Agent,
                _ => Sender::Bot,
            };
            let text = match sender {
                Sender::User => USER_LINES.choose(&mut rng),
                Sender::Bot => BOT_LINES.choose(&mut rng),
                Sender::Agent | Sender::Campaign => AGENT_LINES.choose(&mut rng),
            }
            .expect("lines")
            .to_string();
            let is_bot = sender == Sender::Bot;
            let citations = if is_bot && rng.random_bool(0.4) {
                vec![json!({
                    "clueId": format!("clue-{}", rng.random_range(1..999)),
                    "source": "KNOWLEDGE_BASE",
                    "title": "HR handbook.pdf",
                    "knowledgeBaseId": global_id(&mut rng, "KnowledgeBase"),
                    "pageNo": rng.random_range(1..80),
                    "url": null,
                    "text": "Employees receive 15 days of paid annual leave..."
                })]
            } else {
                Vec::new()
            };
            chats.push(ChatTruth {
                id: global_id(&mut rng, "Chat"),
                sender,
                text,
                rest_draftjs: is_bot && rng.random_bool(0.35),
                timestamp_ms: t,
                citations,
                rating: if is_bot && rng.random_bool(0.3) { Some(rng.random_bool(0.7)) } else { None },
                agent_rating: if is_bot && rng.random_bool(0.1) { Some(rng.random_bool(0.5)) } else { None },
                agent_name: (sender == Sender::Agent).then(|| AGENTS.choose(&mut rng).expect("agents").to_string()),
                chat_options: if is_bot && rng.random_bool(0.2) {
                    OPTIONS.choose_multiple(&mut rng, 2).map(|s| s.to_string()).collect()
                } else {
                    Vec::new()
                },
                kind: is_bot.then(|| "llm".to_string()),
            });
        }
        let mut cats: Vec<String> = Vec::new();
        for (_, name) in &categories {
            if rng.random_bool(0.25) {
                cats.push(name.clone());
            }
        }
        let mut variables = BTreeMap::new();
        if rng.random_bool(0.5) {
            variables
                .insert("department".to_string(), ["HR", "Sales", "개발팀"].choose(&mut rng).expect("d").to_string());
        }
        if rng.random_bool(0.3) {
            variables.insert("employee_level".to_string(), rng.random_range(1..7).to_string());
        }
        conversations.push(ConversationTruth {
            id: global_id(&mut rng, "Conversation"),
            title: TITLES.choose(&mut rng).expect("titles").to_string(),
            user: users.choose(&mut rng).expect("users").clone(),
            created_at_ms: created,
            state: if chat_count == 0 { "INIT".into() } else { STATES.choose(&mut rng).expect("states").to_string() },
            categories: cats,
            memo: if rng.random_bool(0.1) { "follow up next week".into() } else { String::new() },
            app: rng.random_range(0..apps.len()),
            variables,
            chats,
        });
    }
    Dataset {
        api_key: cfg.api_key.clone(),
        email: cfg.email.clone(),
        password: cfg.password.clone(),
        token: format!("alli-token-{:016x}", rng.random::<u64>()),
        apps,
        categories,
        conversations,
    }
}

/// Chats appended to a conversation by [`super::AlliSim::add_chats`]: alternating user and
/// bot lines starting at `at_ms`, one minute apart.
pub(crate) fn more_chats(seed: u64, n: usize, at_ms: i64) -> Vec<ChatTruth> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|k| {
            let sender = if k % 2 == 0 { Sender::User } else { Sender::Bot };
            let lines = if sender == Sender::User { USER_LINES } else { BOT_LINES };
            ChatTruth {
                id: global_id(&mut rng, "Chat"),
                sender,
                text: lines.choose(&mut rng).expect("lines").to_string(),
                rest_draftjs: false,
                timestamp_ms: at_ms + k as i64 * MINUTE,
                citations: Vec::new(),
                rating: None,
                agent_rating: None,
                agent_name: None,
                chat_options: Vec::new(),
                kind: (sender == Sender::Bot).then(|| "llm".to_string()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_with_long_and_empty_conversations() {
        let a = generate(&SimConfig::small(30));
        assert_eq!(a, generate(&SimConfig::small(30)));
        assert_eq!(a.conversations.len(), 33);
        let lens: Vec<usize> = a.conversations.iter().map(|c| c.chats.len()).collect();
        for n in [0, 100, 101, 250] {
            assert!(lens.contains(&n), "{lens:?} has {n}");
        }
        for c in &a.conversations {
            assert!(c.chats.windows(2).all(|w| w[0].timestamp_ms < w[1].timestamp_ms));
        }
        let ids: std::collections::HashSet<&str> =
            a.conversations.iter().flat_map(|c| c.chats.iter().map(|m| m.id.as_str())).collect();
        assert_eq!(ids.len(), a.chat_count(), "chat ids are unique");
    }
}
