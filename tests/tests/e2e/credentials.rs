//! Credentials go to the vendor's origin and nowhere else (issue 15): the real `pipe` binary
//! against a loopback "vendor" that sends it elsewhere (a `next` link, a redirect) and a second
//! loopback server, the recorder, that notes every request it receives. The recorder answers
//! like an empty vendor would, so a client that followed would finish with exit 0: the tests
//! below fail on the exit code and on the recorder's notes.
//!
//! Then the secrets: a secret-bearing variable in a wrongly typed key, an unset variable, a
//! vendor 400 body echoing the credential; the secret must appear in no output at all.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use pipe_tests::*;

/// One request as a loopback server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query.
    uri: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The answer of a loopback server to (method, path and query): status, headers, JSON body.
type Reply = Arc<dyn Fn(&str, &str) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync>;

#[derive(Clone)]
struct Server {
    reply: Reply,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn handle(State(s): State<Server>, req: Request) -> Response {
    let uri = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let method = req.method().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    s.seen.lock().unwrap().push(Seen { method: method.clone(), uri: uri.clone(), headers });
    let (status, headers, body) = (s.reply)(&method, &uri);
    let mut r = Response::builder().status(status).header("content-type", "application/json");
    for (k, v) in headers {
        r = r.header(k, v);
    }
    r.body(Body::from(body)).unwrap()
}

/// Starts a loopback server answering with `reply`; its base URL and what it saw.
async fn serve(reply: Reply) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().fallback(handle).with_state(Server { reply, seen: seen.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

/// A body every source reads as "nothing (more) here": the last, empty page of giosg, Alli REST
/// and GraphQL, and an empty Aimylogic history.
const EMPTY: &str = r#"{"next": null, "previous": null, "results": [], "conversations": [], "cursor": null,
  "chats": [], "totalCount": 0, "messages": [],
  "data": {"conversations": {"pageInfo": {"hasNextPage": false, "endCursor": null}, "edges": []}}}"#;

/// The recorder: notes every request and answers [`EMPTY`].
async fn recorder() -> (String, Arc<Mutex<Vec<Seen>>>) {
    serve(Arc::new(|_, _| (200, Vec::new(), EMPTY.to_string()))).await
}

/// The ways a vendor can send the client elsewhere.
#[derive(Clone, Copy, Debug)]
enum Lure {
    /// The first page's `next` link points at the recorder (giosg pages by absolute URL).
    NextLink,
    /// Every request is redirected (307, so POSTs stay POSTs) to the recorder.
    Redirect,
    /// Every request is redirected to `/moved/...` on the vendor itself, which answers [`EMPTY`].
    SameOriginRedirect,
}

/// A vendor answering per `lure`, the recorder at `elsewhere`.
async fn vendor(lure: Lure, elsewhere: String) -> (String, Arc<Mutex<Vec<Seen>>>) {
    serve(Arc::new(move |_, uri| {
        if uri.starts_with("/moved/") {
            return (200, Vec::new(), EMPTY.to_string());
        }
        match lure {
            Lure::NextLink => {
                let next = format!("{elsewhere}/api/v5/orgs/o1/owned_chats?page=2");
                (200, Vec::new(), serde_json::json!({"next": next, "previous": null, "results": []}).to_string())
            }
            Lure::Redirect => (307, vec![("location", format!("{elsewhere}/landing{uri}"))], String::new()),
            Lure::SameOriginRedirect => (307, vec![("location", format!("/moved{uri}"))], String::new()),
        }
    }))
    .await
}

/// A source of each vendor, its credential as the environment gives it, and the header the
/// vendor should see it in (`None`: in the URL path).
struct Case {
    name: &'static str,
    source: &'static str,
    env: &'static str,
    secret: &'static str,
    header: Option<&'static str>,
}

/// Secrets with characters that are percent-encoded in a URL, to catch both spellings.
const CASES: [Case; 4] = [
    Case {
        name: "giosg",
        source: "plugin = \"giosg\"\norganization_id = \"o1\"\ntoken = \"${E2E_CRED}\"",
        env: "E2E_CRED",
        secret: "giosg-s3cret/9f2a+x",
        header: Some("authorization"),
    },
    Case {
        name: "alli rest",
        source: "plugin = \"alli\"\napi = \"rest\"\napi_key = \"${E2E_CRED}\"",
        env: "E2E_CRED",
        secret: "alli-k3y/77c1+z",
        header: Some("api-key"),
    },
    Case {
        name: "alli graphql",
        source: "plugin = \"alli\"\napi = \"graphql\"\ntoken = \"${E2E_CRED}\"\naccount_id = \"acct1\"",
        env: "E2E_CRED",
        secret: "alli-gql-t0ken/5d1e",
        header: Some("authorization"),
    },
    Case {
        name: "aimylogic",
        source: "plugin = \"aimylogic\"\ntoken = \"${E2E_CRED}\"\nclient_ids = [\"c1\"]",
        env: "E2E_CRED",
        secret: "aimy-ch4nnel/0b9e",
        header: None,
    },
];

fn pipeline(case: &Case, base_url: &str) -> String {
    format!(
        "name = \"creds\"\n\n[source]\n{}\nbase_url = \"{base_url}\"\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n",
        case.source
    )
}

/// Every spelling of `secret` a request or a file could carry it in.
fn spellings(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    vec![secret.to_string(), form.replace('+', "%20"), form.clone(), form.to_lowercase()]
}

/// Runs `case` against a vendor luring with `lure`; returns the exit, stderr, the vendor's
/// and the recorder's notes.
async fn run_lured(case: &Case, lure: Lure) -> (std::process::Output, Vec<Seen>, Vec<Seen>) {
    let (rec_base, rec_seen) = recorder().await;
    let (base, vendor_seen) = vendor(lure, rec_base).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(case, &base)).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[(case.env, case.secret)]).await;
    let vendor_seen = vendor_seen.lock().unwrap().clone();
    let rec_seen = rec_seen.lock().unwrap().clone();
    (out, vendor_seen, rec_seen)
}

/// The credential reached the vendor (so the source really ran and the lure was served),
/// and no request anywhere carried a `Referer`.
fn assert_vendor_got_it(case: &Case, vendor_seen: &[Seen]) {
    assert!(!vendor_seen.is_empty(), "{}: the vendor saw no request", case.name);
    let carried = |s: &Seen| match case.header {
        Some(h) => s.header(h).is_some_and(|v| v.contains(case.secret)),
        None => spellings(case.secret).iter().any(|x| s.uri.contains(x.as_str())),
    };
    assert!(vendor_seen.iter().all(carried), "{}: a vendor request without the credential: {vendor_seen:?}", case.name);
    assert!(vendor_seen.iter().all(|s| s.header("referer").is_none()), "{}: Referer sent: {vendor_seen:?}", case.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_redirects_and_next_links_never_carry_credentials() {
    let mut lures: Vec<(&Case, Lure)> = CASES.iter().map(|c| (c, Lure::Redirect)).collect();
    // Only giosg follows links from the body; Alli's cursor and Aimylogic's offset are values.
    lures.push((&CASES[0], Lure::NextLink));
    for (case, lure) in lures {
        let (out, vendor_seen, rec_seen) = run_lured(case, lure).await;
        let err = stderr(&out);
        assert_vendor_got_it(case, &vendor_seen);
        // The recorder saw nothing at all: not the header, not the path, not a Referer.
        assert!(rec_seen.is_empty(), "{} {lure:?}: the other origin was contacted: {rec_seen:?}", case.name);
        assert_eq!(out.status.code(), Some(1), "{} {lure:?}: the run must fail:\n{err}", case.name);
        let vendor_origin = vendor_seen[0].header("host").map(|h| format!("http://{h}")).unwrap();
        assert!(err.contains(&vendor_origin), "{} {lure:?}: the error names the vendor's origin:\n{err}", case.name);
        assert!(err.contains("outside the origin"), "{} {lure:?}: the documented error:\n{err}", case.name);
        let vendor_name = case.name.split(' ').next().unwrap();
        assert!(err.contains(vendor_name), "{} {lure:?}: the error names the vendor:\n{err}", case.name);
        for s in spellings(case.secret) {
            assert!(!err.contains(&s), "{} {lure:?}: the secret is in stderr:\n{err}", case.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_error_names_both_origins() {
    let (rec_base, rec_seen) = recorder().await;
    let (base, _) = vendor(Lure::NextLink, rec_base.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(&CASES[0], &base)).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[(CASES[0].env, CASES[0].secret)]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&base) && err.contains(&rec_base), "both origins named:\n{err}");
    assert!(rec_seen.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_within_the_vendor_origin_are_followed() {
    for case in &CASES {
        let (out, vendor_seen, rec_seen) = run_lured(case, Lure::SameOriginRedirect).await;
        let err = stderr(&out);
        assert!(out.status.success(), "{}: a same-origin redirect must work:\n{err}", case.name);
        assert_vendor_got_it(case, &vendor_seen);
        let (moved, first): (Vec<&Seen>, Vec<&Seen>) = vendor_seen.iter().partition(|s| s.uri.starts_with("/moved/"));
        assert!(!moved.is_empty(), "{}: the redirect was followed", case.name);
        // 307 keeps the method: GraphQL's POST arrives as a POST.
        assert!(moved.iter().all(|m| first.iter().any(|f| f.method == m.method)), "{}: {vendor_seen:?}", case.name);
        assert!(rec_seen.is_empty());
    }
}

/// Every file under `dir` holding one of the spellings of `secret`.
fn files_containing(dir: &Path, secret: &str) -> Vec<String> {
    let needles = spellings(secret);
    files_under(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            needles.iter().any(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
        })
        .map(|p| p.display().to_string())
        .collect()
}

fn assert_nowhere(what: &str, out: &std::process::Output, dir: &Path, secret: &str) {
    let (o, e) = (String::from_utf8_lossy(&out.stdout), stderr(out));
    for s in spellings(secret) {
        assert!(!o.contains(&s), "{what}: the secret in stdout:\n{o}");
        assert!(!e.contains(&s), "{what}: the secret in stderr:\n{e}");
    }
    assert_eq!(files_containing(dir, secret), Vec::<String>::new(), "{what}: the secret written to a file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_name_the_variable_never_its_value() {
    let secret = "pg-s3cret-4a1c";
    let dir = tempfile::tempdir().unwrap();
    let p = "name = \"creds\"\n\n[source]\nplugin = \"giosg\"\norganization_id = \"o1\"\ntoken = \"${E2E_TOKEN}\"\npage_size = \"${E2E_SECRET}\"\nbase_url = \"http://127.0.0.1:9\"\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n";
    std::fs::write(dir.path().join("p.toml"), p).unwrap();
    let env = [("E2E_SECRET", secret), ("E2E_TOKEN", "tok-9b7d")];
    for args in [&["validate", "p.toml"][..], &["run", "p.toml", "--report", "r.json"]] {
        let out = run_pipe(dir.path(), args, &env).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("${E2E_SECRET}"), "{args:?}: the variable is named:\n{}", stderr(&out));
        assert!(stderr(&out).contains("page_size"), "{args:?}: the key is named:\n{}", stderr(&out));
        assert_nowhere(&format!("{args:?}"), &out, dir.path(), secret);
    }
    // An unset variable beside a set one: the error names it, quotes nothing.
    let p = p
        .replace("page_size = \"${E2E_SECRET}\"", "page_size = 5")
        .replace("organization_id = \"o1\"", "organization_id = \"${E2E_SECRET}${E2E_NOT_SET_ANYWHERE}\"");
    std::fs::write(dir.path().join("p.toml"), p).unwrap();
    let out = run_pipe(dir.path(), &["validate", "p.toml"], &env).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("E2E_NOT_SET_ANYWHERE"), "{}", stderr(&out));
    assert_nowhere("unset variable", &out, dir.path(), secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_body_echoing_the_credential_is_scrubbed_everywhere() {
    for case in &CASES {
        let secret = case.secret.to_string();
        let (base, vendor_seen) = serve(Arc::new(move |_, _| {
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            let body = serde_json::json!({"detail": format!("bad request; you sent {secret} (as {encoded})")});
            (400, Vec::new(), body.to_string())
        }))
        .await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), pipeline(case, &base)).unwrap();
        let out = run_pipe(dir.path(), &["run", "p.toml", "--report", "r.json"], &[(case.env, case.secret)]).await;
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{}: a 400 is not success:\n{err}", case.name);
        assert!(err.contains("400"), "{}: the failure is reported:\n{err}", case.name);
        // A failed run writes no `--report` (only ok and partial runs do); every file that
        // is written (dead letters, state, report) is searched below.
        assert_vendor_got_it(case, &vendor_seen.lock().unwrap());
        assert_nowhere(case.name, &out, dir.path(), case.secret);
        // `pipe state show` works without the secret in the environment.
        let out = run_pipe(dir.path(), &["state", "show", "p.toml"], &[]).await;
        assert!(out.status.success(), "{}: state show without the secret:\n{}", case.name, stderr(&out));
        assert_nowhere(case.name, &out, dir.path(), case.secret);
    }
}
