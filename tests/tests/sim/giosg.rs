//! Tests of the giosg simulator itself: the generated dataset, its encryption (against the
//! reference decryptor, which is itself checked on giosg's public vectors in the crate's unit
//! tests) and the HTTP behaviour clients depend on.

use pipe_sim::giosg::{self, Dataset, GiosgSim, SimConfig, SimOptions, crypto, parse_timestamp};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The demo dataset, generated once per test binary.
fn demo() -> Arc<Dataset> {
    static DEMO: OnceLock<Arc<Dataset>> = OnceLock::new();
    DEMO.get_or_init(|| Arc::new(giosg::generate(&SimConfig::demo()))).clone()
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or_else(|| panic!("{field} is not a string in {v}"))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() && !c.is_ascii_uppercase() }
        })
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

fn ts(v: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    parse_timestamp(str_of(v, field)).unwrap_or_else(|| panic!("{field} unparsable in {v}"))
}

/// Drops everything that comes from crypto randomness.
fn without_ciphertexts(d: &Dataset) -> Vec<giosg::ChatTruth> {
    let mut chats = d.chats.clone();
    for c in &mut chats {
        c.chat.as_object_mut().unwrap().remove("encrypted_symmetric_key");
        for m in &mut c.messages {
            m.json.as_object_mut().unwrap().remove("encrypted_message");
        }
    }
    chats
}

// ---------------------------------------------------------------------------------------------
// Dataset

#[test]
fn generation_is_fast_and_deterministic() {
    let t0 = Instant::now();
    let a = giosg::generate(&SimConfig::demo());
    let first = t0.elapsed();
    let b = giosg::generate(&SimConfig::demo());
    eprintln!("demo dataset: {} chats, {} messages, generated in {first:?}", a.chats.len(), a.message_count());
    // Generous bound: the machine is shared with other builds; typical is well under 1 s.
    assert!(first.as_secs_f64() < 5.0, "generation took {first:?}");
    assert_eq!(without_ciphertexts(&a), without_ciphertexts(&b));
    assert_ne!(a.private_key_pkcs8_pem, b.private_key_pkcs8_pem, "RSA key is crypto-random");
    let other = giosg::generate(&SimConfig { seed: 43, ..SimConfig::demo() });
    assert_ne!(without_ciphertexts(&a)[0].chat["id"], without_ciphertexts(&other)[0].chat["id"]);
    assert!(giosg::generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(5) }).private_key_pkcs8_pem.is_empty());
}

#[test]
fn dataset_is_consistent_and_realistic() {
    let d = demo();
    assert_eq!(d.chats.len(), 300);
    let mut seen_ids = HashSet::new();
    let mut prev_created = None;
    let (mut naive_chats, mut naive_msgs, mut long, mut purged, mut open, mut unanswered, mut empty) =
        (0, 0, 0, 0, 0, 0, 0);
    let mut all_text = String::new();
    let mut types = HashSet::new();
    let mut senders = HashSet::new();

    for (i, c) in d.chats.iter().enumerate() {
        let chat = &c.chat;
        assert!(is_uuid(c.id()) && seen_ids.insert(c.id().to_owned()));
        assert_eq!(str_of(chat, "room_organization_id"), d.organization_id);
        let created = ts(chat, "created_at");
        assert!(prev_created < Some(created), "chats ascending by created_at");
        prev_created = Some(created);
        assert!(ts(chat, "updated_at") >= created);
        naive_chats += usize::from(!str_of(chat, "created_at").ends_with('Z'));

        let ended = chat["is_ended"] == true;
        assert_eq!(chat["ended_at"].is_null(), !ended);
        open += usize::from(!ended);
        if ended {
            assert!(ts(chat, "updated_at") >= ts(chat, "ended_at"));
            assert!(chat["duration"].is_f64());
        }

        // Counts match the messages.
        let msgs: Vec<&Value> = c.messages.iter().map(|m| &m.json).filter(|m| m["type"] == "msg").collect();
        let by = |s: &str| msgs.iter().filter(|m| m["sender_type"] == s).count();
        assert_eq!(chat["message_count"], msgs.len());
        assert_eq!(chat["user_message_count"], by("user"));
        assert_eq!(chat["visitor_message_count"], by("visitor"));
        assert_eq!(chat["has_user_messages"], by("user") > 0);
        assert_eq!(chat["has_visitor_messages"], by("visitor") > 0);
        assert_eq!(chat["tag_count"], c.tags.len());
        unanswered += usize::from(chat["has_user_messages"] == false);
        empty += usize::from(chat["has_messages"] == false);
        assert!(c.messages.len() <= 40);

        // Memberships: the visitor, then 1–3 users.
        assert_eq!(c.memberships[0]["member_type"], "visitor");
        assert!(is_hex32(c.visitor_id()));
        let users = c.memberships.iter().filter(|m| m["member_type"] == "user").count();
        assert!((1..=3).contains(&users) && users + 1 == c.memberships.len(), "chat {i}: {users} users");
        assert_eq!(chat["member_count"], c.memberships.len());
        assert!(c.tags.len() <= 3 && c.variables.len() <= 4);
        for t in &c.tags {
            assert!(is_uuid(str_of(t, "id")) && t["name"].is_string() && t["created_at"].is_string());
        }

        // Messages: ascending, well-formed, encrypted exactly per §5.6.
        let mut prev = None;
        for m in &c.messages {
            let j = &m.json;
            assert!(is_uuid(str_of(j, "id")));
            assert_eq!(j["chat_id"], chat["id"]);
            assert_eq!(j["room_id"], chat["room_id"]);
            let at = ts(j, "created_at");
            assert!(prev < Some(at), "messages strictly ascending");
            prev = Some(at);
            naive_msgs += usize::from(!str_of(j, "created_at").ends_with('Z'));
            types.insert(str_of(j, "type").to_owned());
            senders.insert(str_of(j, "sender_type").to_owned());
            if j["sender_type"] == "visitor" {
                assert_eq!(j["sender_id"].as_str(), Some(c.visitor_id()));
            }
            let content = matches!(str_of(j, "type"), "msg" | "autosuggest" | "tag_created");
            let is_purged = !j["sensitive_data_purged_at"].is_null();
            purged += usize::from(is_purged);
            assert_eq!(m.plaintext.is_some(), content && !is_purged, "{j}");
            if let Some(p) = &m.plaintext {
                let n = p.chars().count();
                assert!(n <= 2000);
                long += usize::from(n == 2000);
                all_text.push_str(p);
            }
            assert_eq!(j["is_encrypted"], c.is_encrypted());
            if c.is_encrypted() {
                assert!(j["message"].is_null());
                assert_eq!(j.get("encrypted_message").is_some(), m.plaintext.is_some(), "{j}");
            } else {
                assert!(j.get("encrypted_message").is_none());
                assert_eq!(j["message"].as_str(), m.plaintext.as_deref());
            }
        }
        if c.is_encrypted() {
            let key = str_of(chat, "encrypted_symmetric_key");
            assert_eq!(key.chars().filter(|c| !c.is_whitespace()).count(), 344);
            assert!(key.ends_with('\n') && key.lines().all(|l| l.len() <= 76));
            assert_eq!(str_of(chat, "room_name"), "Demo encrypted room 🔒");
        } else {
            assert!(chat.get("encrypted_symmetric_key").is_none());
        }
    }

    assert_eq!(d.chats.iter().filter(|c| c.is_encrypted()).count(), 60);
    for t in ["msg", "join", "leave", "autosuggest", "tag_created"] {
        assert!(types.contains(t), "no {t} message");
    }
    assert_eq!(senders, HashSet::from(["visitor".to_owned(), "user".to_owned(), "rule".to_owned()]));
    eprintln!(
        "naive chats {naive_chats}, naive msgs {naive_msgs}, 2000-char {long}, purged {purged}, open {open}, \
         no user msgs {unanswered}, no msgs {empty}"
    );
    for (what, n) in [("naive chat", naive_chats), ("naive msg", naive_msgs), ("2000-char", long), ("purged", purged)] {
        assert!(n > 0, "no {what}");
    }
    assert!(open > 10 && unanswered > 5 && empty > 5);
    for probe in ["ä", "ö", "Здравствуйте", "こんにちは", "你好", "🎉", "👨‍👩‍👧‍👦", "\n", "\"", "\\"]
    {
        assert!(all_text.contains(probe), "no {probe:?} in texts");
    }
    assert!(d.chats.iter().flat_map(|c| &c.variables).any(|v| v["key"] == "username"));
}

#[test]
fn every_encrypted_message_decrypts_with_the_reference_algorithm() {
    let d = demo();
    let mut n = 0;
    for c in d.chats.iter().filter(|c| c.is_encrypted()) {
        let key_json = crypto::unwrap_chat_key(&d.private_key_pkcs8_pem, str_of(&c.chat, "encrypted_symmetric_key"))
            .expect("RSA unwrap");
        for m in &c.messages {
            if let Some(ct) = m.json.get("encrypted_message") {
                let text = crypto::decrypt_message(&key_json, ct.as_str().unwrap()).expect("AES/HMAC");
                assert_eq!(Some(text), m.plaintext);
                assert!(ct.as_str().unwrap().starts_with("MDAwMD"), "base64 of the \"00000\" header");
                n += 1;
            }
        }
    }
    assert!(n > 100, "only {n} encrypted messages");
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Api {
    sim: GiosgSim,
    http: reqwest::Client,
    data: Arc<Dataset>,
}

impl Api {
    async fn start(data: Arc<Dataset>) -> Self {
        let sim = GiosgSim::start(data.clone(), SimOptions::default()).await.expect("start sim");
        Self { sim, http: reqwest::Client::new(), data }
    }

    fn org_url(&self, tail: &str) -> String {
        format!("{}/api/v5/orgs/{}/{tail}", self.sim.base_url(), self.data.organization_id)
    }

    /// GET with `Authorization: Token <auth>` (no header when `auth` is None).
    async fn get_as(&self, url: &str, auth: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.get(url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json().await.expect("JSON body");
        (status, headers, body)
    }

    async fn get(&self, url: &str) -> (u16, Value) {
        let (s, _, b) = self.get_as(url, Some(&format!("Token {}", self.data.token))).await;
        (s, b)
    }

    /// Follows `next` from `url`; returns all results and the page lengths.
    async fn collect(&self, url: &str) -> (Vec<Value>, Vec<usize>) {
        let (mut items, mut pages) = (Vec::new(), Vec::new());
        let mut next = Some(url.to_owned());
        let mut first = true;
        while let Some(url) = next {
            let (status, body) = self.get(&url).await;
            assert_eq!(status, 200, "{url}: {body}");
            assert_eq!(body["previous"].is_null(), first, "previous on {url}");
            first = false;
            let results = body["results"].as_array().expect("results");
            pages.push(results.len());
            items.extend(results.iter().cloned());
            next = body["next"].as_str().map(str::to_owned);
            if let Some(n) = &next {
                check_next_url(n, &self.sim.base_url(), &url);
            }
        }
        (items, pages)
    }
}

/// `next` is absolute, on the same host, carries a 32-hex cursor and the original parameters.
fn check_next_url(next: &str, base: &str, from: &str) {
    assert!(next.starts_with(base), "{next} not absolute on {base}");
    let (path, query) = next.split_once('?').expect("next has a query");
    assert_eq!(path, from.split('?').next().unwrap());
    let params: Vec<&str> = query.split('&').collect();
    let cursor = params[0].strip_prefix("cursor=").expect("cursor first");
    assert!(is_hex32(cursor), "cursor {cursor}");
    let originals = from.split_once('?').map_or("", |(_, q)| q);
    for p in originals.split('&').filter(|p| !p.is_empty() && !p.starts_with("cursor=")) {
        assert!(params.contains(&p), "{next} lost {p}");
    }
}

#[tokio::test]
async fn auth_and_error_answers() {
    let api = Api::start(demo()).await;
    let chats = api.org_url("owned_chats");
    let (s, h, b) = api.get_as(&chats, None).await;
    assert_eq!((s, str_of(&b, "detail")), (401, "Authentication credentials were not provided."));
    assert_eq!(h["www-authenticate"], "Token");
    let (s, _, b) = api.get_as(&chats, Some("Token nope")).await;
    assert_eq!((s, str_of(&b, "detail")), (401, "Invalid token."));
    let (s, _, _) = api.get_as(&chats, Some(&format!("Bearer {}", api.data.token))).await;
    assert_eq!(s, 401);

    let wrong_org = format!("{}/api/v5/orgs/00000000-0000-4000-8000-000000000000/owned_chats", api.sim.base_url());
    let (s, b) = api.get(&wrong_org).await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = api.get(&api.org_url("owned_chats/00000000-0000-4000-8000-000000000000/messages")).await;
    assert_eq!((s, str_of(&b, "detail")), (404, "Not found."));
    let c = &api.data.chats[0];
    let (s, _) = api.get(&api.org_url(&format!("owned_chats/{}/visitors/{}/variables", c.id(), "0".repeat(32)))).await;
    assert_eq!(s, 404);
    let (s, _) = api.get(&format!("{}/api/v5/nothing", api.sim.base_url())).await;
    assert_eq!(s, 404);
    let (s, b) = api.get(&format!("{chats}?ordering=id")).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = api.get(&format!("{chats}?is_ended=maybe")).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = api.get(&format!("{chats}?cursor=0123456789abcdef0123456789abcdef")).await;
    assert_eq!((s, str_of(&b, "detail")), (404, "Invalid cursor"));

    // Trailing slashes are tolerated; the single-chat object equals the listed one.
    let (s, b) = api.get(&format!("{chats}/")).await;
    assert_eq!(s, 200);
    assert!(b["results"].as_array().unwrap().len() <= 25);
    let (s, b) = api.get(&api.org_url(&format!("owned_chats/{}/", c.id()))).await;
    assert_eq!((s, &b), (200, &c.chat));
    let (s, b) = api.get(&api.org_url(&format!("owned_chats/{}/tags/", c.id()))).await;
    assert_eq!((s, b["results"].as_array().unwrap()), (200, &c.tags));
    assert_eq!(api.sim.requests(), 13);
    api.sim.shutdown().await;
}

#[tokio::test]
async fn chat_listing_returns_every_chat_once_in_order() {
    let api = Api::start(demo()).await;
    let d = api.data.clone();
    let key = |c: &Value, f: &str| (ts(c, f), str_of(c, "id").to_owned());
    let mut short_pages = 0;
    for ordering in ["created_at", "-created_at", "updated_at", "-updated_at", ""] {
        let mut expected: Vec<&Value> = d.chats.iter().map(|c| &c.chat).collect();
        let field = if ordering.contains("updated") { "updated_at" } else { "created_at" };
        expected.sort_by_key(|c| key(c, field));
        if ordering.starts_with('-') || ordering.is_empty() {
            expected.reverse();
        }
        for page_size in ["", "&page_size=7", "&page_size=100", "&page_size=1000"] {
            let url = api.org_url(&format!("owned_chats?ordering={ordering}{page_size}"));
            let (items, pages) = api.collect(&url).await;
            let ids: Vec<&str> = items.iter().map(|c| str_of(c, "id")).collect();
            let want: Vec<&str> = expected.iter().map(|c| str_of(c, "id")).collect();
            assert_eq!(ids, want, "{url}");
            assert_eq!(items, expected.iter().map(|&c| c.clone()).collect::<Vec<_>>());
            let size = match page_size {
                "" => 25,
                "&page_size=7" => 7,
                _ => 100,
            };
            assert!(pages.iter().all(|&n| n >= 1 && n <= size), "{url}: {pages:?}");
            short_pages += pages[..pages.len() - 1].iter().filter(|&&n| n < size).count();
        }
    }
    assert!(short_pages > 10, "only {short_pages} short pages");

    // Filters select exactly the matching chats.
    for (query, field, want) in [
        ("is_ended=false", "is_ended", false),
        ("is_ended=true", "is_ended", true),
        ("has_user_messages=true", "has_user_messages", true),
        ("has_user_messages=false", "has_user_messages", false),
        ("has_visitor_messages=false", "has_visitor_messages", false),
    ] {
        let (items, _) = api.collect(&api.org_url(&format!("owned_chats?ordering=-created_at&{query}"))).await;
        let expected = d.chats.iter().filter(|c| c.chat[field] == want).count();
        assert!(expected > 0, "{query}");
        assert_eq!(items.len(), expected, "{query}");
        assert!(items.iter().all(|c| c[field] == want));
    }
    let (items, _) =
        api.collect(&api.org_url("owned_chats?has_user_messages=true&has_visitor_messages=true&page_size=50")).await;
    let both = |c: &Value| c["has_user_messages"] == true && c["has_visitor_messages"] == true;
    assert_eq!(items.len(), d.chats.iter().filter(|c| both(&c.chat)).count());

    // The optional time filter (an assumption, not required by clients) is inclusive.
    let cut = str_of(&d.chats[100].chat, "created_at").to_owned();
    let cut = if cut.ends_with('Z') { cut } else { format!("{cut}Z") };
    let (items, _) = api.collect(&api.org_url(&format!("owned_chats?ordering=created_at&created_at__gte={cut}"))).await;
    assert_eq!(items.len(), 200);
    api.sim.shutdown().await;
}

#[tokio::test]
async fn per_chat_endpoints_serve_the_ground_truth() {
    let api = Api::start(demo()).await;
    for c in &api.data.chats {
        let id = c.id();
        let (msgs, _) = api.collect(&api.org_url(&format!("owned_chats/{id}/messages?page_size=10"))).await;
        assert_eq!(msgs, c.messages.iter().map(|m| m.json.clone()).collect::<Vec<_>>(), "chat {id}");
        let (members, _) = api.collect(&api.org_url(&format!("owned_chats/{id}/memberships"))).await;
        assert_eq!(members, c.memberships);
        let (tags, _) = api.collect(&api.org_url(&format!("owned_chats/{id}/tags"))).await;
        assert_eq!(tags, c.tags);
        let url = api.org_url(&format!("owned_chats/{id}/visitors/{}/variables", c.visitor_id()));
        let (vars, _) = api.collect(&url).await;
        assert_eq!(vars, c.variables);
    }
    api.sim.shutdown().await;
}

#[tokio::test]
async fn fail_auth_after_and_inject_429() {
    let api = Api::start(Arc::new(giosg::generate(&SimConfig::small(10)))).await;
    let url = api.org_url("owned_chats");

    api.sim.inject_429_every(3);
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let (s, h, b) = api.get_as(&url, Some(&format!("Token {}", api.data.token))).await;
        if s == 429 {
            assert_eq!(h["retry-after"], "1");
            assert!(b["detail"].is_string());
        }
        statuses.push(s);
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429, 200]);
    assert_eq!(api.sim.throttled(), 2);
    api.sim.inject_429_every(0);

    api.sim.fail_auth_after(2);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(api.get(&url).await.0);
    }
    assert_eq!(statuses, [200, 200, 401, 401, 401]);
    assert_eq!(api.sim.requests(), 12);
    assert_eq!(api.sim.request_log().len(), 12);
    assert!(api.sim.request_log()[0].starts_with("GET /api/v5/orgs/"));

    let base = api.sim.base_url();
    api.sim.shutdown().await;
    assert!(api.http.get(&base).send().await.is_err(), "server still answers after shutdown");
}
