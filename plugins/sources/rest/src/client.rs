//! The vendor as the spec describes it: credentials ([`crate::spec::AuthSpec`]) on the SDK's
//! [`HttpClient`] bound to the spec's origin, the conversation listing, and one conversation's
//! messages and extras ([`Client::bundle`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use pipe_plugin_sdk::http::HttpClient;
use pipe_plugin_sdk::paging::with_param;
use pipe_plugin_sdk::{Metrics, PluginError, Result};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::config::{Loaded, resolve_env};
use crate::mapping::Bundle;
use crate::pager::Pager;
use crate::spec::{AuthSpec, PagedPrograms, PagingSpec, Spec};

/// A connected client: credentials in place (a login done).
#[derive(Clone)]
pub struct Client {
    http: HttpClient,
    base: String,
    spec: Arc<Spec>,
    vars: Value,
    auth_query: Option<(String, String)>,
    /// The path secret (`auth.type = "path"`), percent-encoded: each path's `{auth}`.
    auth_path: Option<String>,
}

fn config_err(path: &str, message: impl Into<String>) -> PluginError {
    PluginError::Config { path: path.into(), message: message.into() }
}

fn env(key: &str, s: &str) -> Result<String> {
    resolve_env(s).map_err(|m| config_err(&format!("spec.{key}"), m))
}

/// Resolves `${VAR}` in every string of a JSON value; the strings that held a reference are
/// added to `secrets` (a login body's password).
fn env_value(key: &str, v: &Value, secrets: &mut Vec<String>) -> Result<Value> {
    Ok(match v {
        Value::String(s) => {
            let resolved = env(key, s)?;
            if s.contains("${") && !resolved.is_empty() {
                secrets.push(resolved.clone());
            }
            Value::String(resolved)
        }
        Value::Array(items) => Value::Array(items.iter().map(|x| env_value(key, x, secrets)).collect::<Result<_>>()?),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, x)| Ok((k.clone(), env_value(key, x, secrets)?))).collect::<Result<_>>()?)
        }
        other => other.clone(),
    })
}

fn header(key: &str, name: &str, value: &str, secret: bool) -> Result<(HeaderName, HeaderValue)> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| config_err(&format!("spec.{key}"), format!("`{name}` is not an HTTP header name")))?;
    let value = if secret {
        HttpClient::sensitive_header(value)
    } else {
        HeaderValue::from_str(value).map_err(|_| PluginError::Config { path: String::new(), message: String::new() })
    }
    .map_err(|_| config_err(&format!("spec.{key}"), "contains characters not allowed in an HTTP header"))?;
    Ok((name, value))
}

impl Client {
    /// Resolves the credentials and, for a login, logs in.
    ///
    /// Errors: [`PluginError::Config`] for an unset `${VAR}`, a bad header or base URL;
    /// [`PluginError::Auth`] for refused credentials (or a login answer without a token).
    pub async fn connect(loaded: &Loaded, vendor: &str, metrics: Arc<Metrics>) -> Result<Self> {
        let spec = &loaded.spec;
        let base = loaded.base_url()?;
        let mut settings = loaded.config.http.settings();
        settings.vendor = vendor.to_string();
        settings.base_url = Some(base.clone());
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::ACCEPT, HeaderValue::from_static("application/json"));
        for (k, v) in &spec.file.headers {
            let (n, v) = header(&format!("headers.{k}"), k, &env(&format!("headers.{k}"), v)?, false)?;
            headers.insert(n, v);
        }
        let mut secrets: Vec<String> = Vec::new();
        let mut auth_query = None;
        let mut auth_path = None;
        match &spec.file.auth {
            AuthSpec::None => {}
            AuthSpec::Header { name, value } => {
                let value = env("auth.value", value)?;
                let (n, v) = header("auth.name", name, value.trim(), true)?;
                headers.insert(n, v);
                secrets.push(value.trim().to_string());
            }
            AuthSpec::Bearer { token } => {
                let token = env("auth.token", token)?;
                let (n, v) = header("auth.token", "authorization", &format!("Bearer {}", token.trim()), true)?;
                headers.insert(n, v);
                secrets.push(token.trim().to_string());
            }
            AuthSpec::Basic { username, password } => {
                let (user, pass) = (env("auth.username", username)?, env("auth.password", password)?);
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                let (n, v) = header("auth.username", "authorization", &format!("Basic {encoded}"), true)?;
                headers.insert(n, v);
                secrets.extend([user, pass, encoded]);
            }
            AuthSpec::Query { name, value } => {
                let value = env("auth.value", value)?;
                secrets.push(value.clone());
                auth_query = Some((name.clone(), value));
            }
            AuthSpec::Path { value } => {
                let value = env("auth.value", value)?;
                auth_path = Some(encode_segment(value.trim()));
                secrets.push(value.trim().to_string());
            }
            AuthSpec::Login { path, body, header: name, prefix, .. } => {
                let body = env_value("auth.body", body, &mut secrets)?;
                let login = secrets
                    .iter()
                    .fold(HttpClient::new(settings.clone(), headers.clone(), metrics.clone())?, |c, s| {
                        c.redact(s.clone())
                    });
                let answer = login.post_json(&format!("{base}{path}"), &body).await?;
                let program = spec.programs.login_token.as_ref().expect("a login has a token program");
                let token = match program.first(&answer, &[&Value::Null]) {
                    Ok(Value::String(t)) if !t.trim().is_empty() => t.trim().to_string(),
                    _ => {
                        return Err(PluginError::Auth {
                            vendor: vendor.to_string(),
                            status: 200,
                            what: format!("the login {path} (no token in the answer)"),
                        });
                    }
                };
                let (n, v) = header("auth.header", name, &format!("{prefix}{token}"), true)?;
                headers.insert(n, v);
                secrets.push(token);
            }
        }
        let http = secrets
            .iter()
            .filter(|s| !s.is_empty())
            .fold(HttpClient::new(settings, headers, metrics)?, |c, s| c.redact(s.clone()));
        Ok(Client { http, base, spec: Arc::new(spec.clone()), vars: loaded.vars()?, auth_query, auth_path })
    }

    /// `$vars`, `${VAR}` resolved.
    pub fn vars(&self) -> &Value {
        &self.vars
    }

    /// The HTTP client (its scrub removes every credential).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The first URL of a path with its query (values resolved, the query credential added).
    fn url(&self, path: &str, query: &BTreeMap<String, String>, key: &str) -> Result<String> {
        let path = match &self.auth_path {
            Some(secret) => path.replace("{auth}", secret),
            None => path.to_string(),
        };
        let mut url = format!("{}{path}", self.base);
        for (k, v) in query {
            url = with_param(&url, k, &env(&format!("{key}.query.{k}"), v)?)?;
        }
        if let Some((name, value)) = &self.auth_query {
            url = with_param(&url, name, value)?;
        }
        Ok(url)
    }

    /// A pager over the conversation listing; `floor` is the incremental query parameter
    /// (`name`, value), when the spec sends one.
    pub fn listing(&self, floor: Option<(String, String)>) -> Result<Pager> {
        let c = &self.spec.file.conversations;
        let path = c.path.as_deref().unwrap_or_default();
        let mut url = self.url(path, &c.query, "conversations")?;
        if let Some((name, value)) = floor {
            url = with_param(&url, &name, &value)?;
        }
        let listing = self.http.scrub(path);
        Ok(self.pager(url, c.paging.clone(), self.spec.programs.conversations.clone(), listing))
    }

    fn pager(&self, url: String, paging: PagingSpec, programs: PagedPrograms, listing: String) -> Pager {
        Pager::new(self.http.clone(), url, paging, programs, self.vars.clone(), self.auth_query.clone(), listing)
    }

    /// The path with `{field}` replaced by the conversation's fields, percent-encoded.
    fn fill(&self, path: &str, conversation: &Value) -> Result<String> {
        let mut out = String::new();
        let mut rest = path;
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let end = rest[i..].find('}').expect("checked at load") + i;
            let name = &rest[i + 1..end];
            // The path secret is put in by `url`.
            if name == "auth" && self.auth_path.is_some() {
                out.push_str("{auth}");
                rest = &rest[end + 1..];
                continue;
            }
            let value = match conversation.get(name) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(PluginError::Protocol {
                        vendor: self.http.vendor().to_string(),
                        message: format!("the conversation has no string or number `{name}` for the path {path}"),
                    });
                }
            };
            out.push_str(&encode_segment(&value));
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Every record of a paged listing of one conversation; with `unique`, repeated identities
    /// are dropped and a page of only repeats ends it as a loop. Also the body of the last
    /// page.
    async fn all(&self, mut pager: Pager, unique: Option<&crate::expr::Program>) -> Result<(Vec<Value>, Value)> {
        let mut records = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut last = Value::Null;
        while let Some(page) = pager.next_page().await? {
            let mut new = 0;
            let empty = page.records.is_empty();
            for r in page.records {
                let fresh = match unique {
                    Some(p) => match p.first(&r, &[&self.vars]) {
                        Ok(Value::Null) | Err(_) => true,
                        Ok(id) => seen.insert(id.to_string()),
                    },
                    None => true,
                };
                if fresh {
                    new += 1;
                    records.push(r);
                }
            }
            last = page.body;
            if unique.is_some() && !empty && new == 0 {
                return Err(pager.guard().cut("a page holds only records already read"));
            }
        }
        Ok((records, last))
    }

    /// A listed conversation with its messages and extras.
    ///
    /// Errors: HTTP errors (a 404 is [`PluginError::NotFound`], which the crawl makes this
    /// conversation's dead letter), [`PluginError::ListingCut`] when its pages loop,
    /// [`PluginError::Protocol`] when a jq program fails.
    pub async fn bundle(&self, id: String, mut conversation: Value) -> Result<Bundle> {
        let spec = &self.spec;
        let m = &spec.file.messages;
        let (records, last_page) = match &m.path {
            Some(path) => {
                let url = self.url(&self.fill(path, &conversation)?, &m.query, "messages")?;
                let listing = format!("the messages of conversation `{id}`");
                let pager = self.pager(url, m.paging.clone(), spec.programs.messages.clone(), listing);
                self.all(pager, spec.programs.unique.as_ref()).await?
            }
            None => {
                let records =
                    spec.programs.messages.records.list(&conversation, &[&self.vars]).map_err(|e| self.protocol(e))?;
                (records, Value::Null)
            }
        };
        for (i, extra) in spec.file.extras.iter().enumerate() {
            let url = self.url(&self.fill(&extra.path, &conversation)?, &extra.query, &format!("extras[{i}]"))?;
            let listing = format!("the {} of conversation `{id}`", extra.into);
            let pager = self.pager(url, extra.paging.clone(), spec.programs.extras[i].clone(), listing);
            let (items, _) = self.all(pager, None).await?;
            if let Some(o) = conversation.as_object_mut() {
                o.insert(extra.into.clone(), Value::Array(items));
            }
        }
        let count = match &spec.programs.count {
            Some(p) => {
                let input = serde_json::json!({"conversation": conversation, "page": last_page});
                p.first(&input, &[&self.vars]).map_err(|e| self.protocol(e))?.as_u64()
            }
            None => None,
        };
        Ok(Bundle { id, conversation, records, count })
    }

    fn protocol(&self, message: String) -> PluginError {
        PluginError::Protocol { vendor: self.http.vendor().to_string(), message: self.http.scrub(&message) }
    }
}

/// Percent-encodes one path segment (ids with spaces, `/`, `:`, Cyrillic).
fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}
