//! The `[source]` keys of the Aimylogic source (history and webhook mode), and the client ids
//! they name.

use pipe_plugin_sdk::config::Secret;
use pipe_plugin_sdk::source_kit::{HttpConfig, HttpDefaults};
use pipe_plugin_sdk::time::Zone;
use pipe_plugin_sdk::{PluginError, Result};
use schemars::JsonSchema;
use serde::Deserialize;

/// Aimylogic's HTTP defaults: the Aimylogic Chat API host (JAICP: `https://bot.jaicp.com`), 4
/// requests in flight, a retry budget of 200.
#[derive(Debug, Clone, Copy)]
pub struct AimylogicHttp;

impl HttpDefaults for AimylogicHttp {
    const VENDOR: &'static str = crate::VENDOR;
    const BASE_URL: &'static str = "https://bot.aimylogic.com";
}

/// Which job the source does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Batch export of the history of known clients.
    #[default]
    History,
    /// A service receiving Aimylogic's webhook POSTs until stopped.
    Webhook,
}

/// Configuration of the Aimylogic source (the `[source]` table of a pipeline).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AimylogicConfig {
    /// `history` (default) or `webhook`.
    #[serde(default)]
    pub mode: Mode,
    /// The Chat API channel token (`<8 alphanumerics>:<40 hex>`), from the bot's Channels →
    /// Chat API settings. It is part of every request path; never printed. Give it as
    /// `"${AIMYLOGIC_TOKEN}"`. Its prefix before `:` is the non-secret `account_id`.
    pub token: Secret,
    // `base_url` (the API root; JAICP: `https://bot.jaicp.com`), `concurrency` (history mode:
    // also clients fetched at the same time), `requests_per_second`, `retry_budget`,
    // `ca_file`; flat in `[source]`.
    #[serde(flatten)]
    pub http: HttpConfig<AimylogicHttp>,
    /// Client ids whose history is exported (history mode).
    #[serde(default)]
    pub client_ids: Vec<String>,
    /// A file of client ids, one per line (blank lines and lines starting with `#` skipped).
    /// History mode reads it; webhook mode appends the ids it sees for the first time when
    /// `record_client_ids` is true, so a nightly history run covers them.
    #[serde(default)]
    pub client_ids_file: Option<String>,
    /// History mode: start of the span (inclusive), RFC 3339 or a naive ISO time (UTC); sent as
    /// the `from` query parameter. Default: the beginning.
    #[serde(default)]
    pub from: Option<String>,
    /// History mode: end of the span (exclusive), as `from`. Default: now.
    #[serde(default)]
    pub to: Option<String>,
    /// The IANA time zone (`Europe/Moscow`) of the vendor's times written without a zone (the
    /// Chat API's `timestamp`, docs/vendors/aimylogic.md §1); times with an offset, `Z` or as
    /// epoch numbers are read as written. Default `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// History mode: items asked per request (`limit`/`offset` paging). A server that ignores
    /// `limit`, returns fewer items than asked, or ignores `offset` is detected and paged
    /// another way (see the README). Default 100.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// History mode: a checkpoint (and so, at most every `commit_interval_seconds`, a commit)
    /// after this many clients (or sooner, once 1 MiB of message text and raw payloads came
    /// since the last one); it carries the per-client watermarks and the clients this run
    /// has done, so an interrupted run resumes after them. Default 100.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u32,
    /// Webhook mode: address to listen on. Default `127.0.0.1:8088`; port 0 picks a free port
    /// (the bound address is logged).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Webhook mode: the path the webhook POSTs arrive on. Default `/`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Webhook mode: when set, a POST must carry this value in the `secret_header` header
    /// (preferred) or the `secret_query` query parameter, else it gets 401; compared in
    /// constant time. At least 16 characters: an empty or shorter value (e.g. a variable set
    /// but empty) is a configuration error. Required unless `listen` is a loopback address or
    /// `allow_unauthenticated` is true.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Webhook mode: header checked for `secret`. Default `X-Webhook-Secret`.
    #[serde(default = "default_secret_header")]
    pub secret_header: String,
    /// Webhook mode: query parameter checked for `secret` (the weaker option: URLs end up in
    /// proxy and access logs; use it only when the sender cannot set a header). Default
    /// `secret`.
    #[serde(default = "default_secret_query")]
    pub secret_query: String,
    /// Webhook mode: accept POSTs without a `secret` on a non-loopback `listen` address (e.g.
    /// behind a proxy that authenticates). Default false: such a pipeline is refused.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// Webhook mode: connections served at once; further ones wait in the listen backlog
    /// until a slot frees. Keep it well under the open-files limit (`ulimit -n`). Default 128.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Webhook mode: seconds a connection has to send a request's headers, counted from when
    /// the server starts waiting for them — also the idle keep-alive timeout. Connections
    /// accepted while more than three quarters of `max_connections` are taken get at most 1 s.
    /// Default 5.
    #[serde(default = "default_header_timeout_seconds")]
    pub header_timeout_seconds: f64,
    /// Webhook mode: seconds an authenticated request has to send its whole body; a slower
    /// one is answered 408. Default 10.
    #[serde(default = "default_body_timeout_seconds")]
    pub body_timeout_seconds: f64,
    /// Webhook mode: largest accepted body in bytes; larger ones get 413 and a dead letter.
    /// Default 1048576 (1 MiB).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Webhook mode: how long a POST waits for its rows to be committed before it is answered
    /// 503 (the sender retries). Default 30 s.
    #[serde(default = "default_ack_timeout_seconds")]
    pub ack_timeout_seconds: f64,
    /// Webhook mode: append client ids seen for the first time to `client_ids_file`.
    /// Default true when `client_ids_file` is set.
    #[serde(default = "default_true")]
    pub record_client_ids: bool,
    /// Webhook mode: how many recent event keys the saved state remembers, so an event the
    /// sender retries after a crash (committed, but its 2xx lost) is not emitted twice.
    /// Default 5000.
    #[serde(default = "default_dedupe_window")]
    pub dedupe_window: usize,
}

fn default_page_size() -> u32 {
    100
}
fn default_checkpoint_every() -> u32 {
    100
}
fn default_listen() -> String {
    "127.0.0.1:8088".into()
}
fn default_path() -> String {
    "/".into()
}
fn default_secret_header() -> String {
    "X-Webhook-Secret".into()
}
fn default_secret_query() -> String {
    "secret".into()
}
fn default_max_body_bytes() -> usize {
    1 << 20
}
fn default_max_connections() -> usize {
    128
}
fn default_header_timeout_seconds() -> f64 {
    5.0
}
fn default_body_timeout_seconds() -> f64 {
    10.0
}
fn default_ack_timeout_seconds() -> f64 {
    30.0
}
fn default_true() -> bool {
    true
}
fn default_dedupe_window() -> usize {
    5000
}

impl AimylogicConfig {
    /// The non-secret `account_id`: the token's prefix before `:` (docs/vendors/aimylogic.md §1).
    /// A token without `:` gives `h` + a 64-bit FNV-1a hash of it in hex, so no part of the
    /// secret is written out.
    pub fn account_id(&self) -> String {
        account_id_of(self.token.expose())
    }

    /// The zone of zone-less vendor times (`timezone`, default UTC).
    ///
    /// Errors: [`PluginError::Config`] (path `timezone`) for a name the IANA database lacks.
    pub fn zone(&self) -> Result<Zone> {
        match &self.timezone {
            None => Ok(Zone::UTC),
            Some(name) => Zone::named(name).map_err(|message| PluginError::Config { path: "timezone".into(), message }),
        }
    }

    /// The configuration checks beyond types: in both modes a known `timezone`; in webhook mode
    /// the listener's (none else in history mode): `secret`, when
    /// given, has at least [`MIN_SECRET_CHARS`] characters; a `listen` address that is not
    /// loopback needs a `secret` unless `allow_unauthenticated` is true; the limits are
    /// positive.
    ///
    /// Errors: [`PluginError::Config`] naming the key (the engine exits 2).
    pub fn check_webhook(&self) -> Result<()> {
        self.zone()?;
        if self.mode != Mode::Webhook {
            return Ok(());
        }
        let err = |path: &str, message: String| Err(PluginError::Config { path: path.into(), message });
        if let Some(secret) = &self.secret
            && secret.expose().chars().count() < MIN_SECRET_CHARS
        {
            // Never the value, only its length.
            return err(
                "secret",
                format!(
                    "is {} characters long; a shared secret needs at least {MIN_SECRET_CHARS} (an empty value is usually \
                     a variable that is set but empty)",
                    secret.expose().chars().count()
                ),
            );
        }
        if self.secret.is_none() && !self.allow_unauthenticated && !listens_on_loopback(&self.listen) {
            return err(
                "secret",
                format!(
                    "`listen = \"{}\"` is not a loopback address: set `secret` (checked in the `{}` header), or \
                     `allow_unauthenticated = true` if something in front authenticates the sender",
                    self.listen, self.secret_header
                ),
            );
        }
        if self.max_connections == 0 {
            return err("max_connections", "must be at least 1".into());
        }
        for (key, v) in [
            ("header_timeout_seconds", self.header_timeout_seconds),
            ("body_timeout_seconds", self.body_timeout_seconds),
            ("ack_timeout_seconds", self.ack_timeout_seconds),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 3600.0) {
                return err(key, "must be a number of seconds above 0 and at most 3600".into());
            }
        }
        Ok(())
    }

    /// `client_ids` plus the ids of `client_ids_file`, first occurrence kept, in order.
    ///
    /// Errors: [`PluginError::Config`] (path `client_ids_file`) when the file cannot be read.
    pub fn all_client_ids(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut add = |id: &str| {
            if seen.insert(id.to_string()) {
                out.push(id.to_string());
            }
        };
        for id in &self.client_ids {
            add(id);
        }
        if let Some(path) = &self.client_ids_file {
            for id in read_client_ids_file(path)? {
                add(&id);
            }
        }
        Ok(out)
    }
}

/// Shortest accepted webhook `secret`, in characters.
pub const MIN_SECRET_CHARS: usize = 16;

/// True when every address `listen` names (an `ip:port`, or `host:port` resolved now) is a
/// loopback address. An address that does not resolve counts as not loopback (binding it
/// fails later with its own error).
fn listens_on_loopback(listen: &str) -> bool {
    use std::net::ToSocketAddrs as _;
    match listen.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// The ids of a client ids file: one per line, trimmed; blank lines and `#` comments skipped.
/// A missing file is empty (webhook mode creates it).
///
/// Errors: [`PluginError::Config`] when the file exists but cannot be read.
pub fn read_client_ids_file(path: &str) -> Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => {
            Err(PluginError::Config { path: "client_ids_file".into(), message: format!("cannot read {path}: {e}") })
        }
    }
}

/// See [`AimylogicConfig::account_id`].
pub fn account_id_of(token: &str) -> String {
    match token.split_once(':') {
        Some((prefix, _)) if !prefix.is_empty() => prefix.to_string(),
        _ => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in token.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            format!("h{h:016x}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_id_is_the_prefix_or_a_hash() {
        assert_eq!(account_id_of("FZWSBqfV:68932bef32cca3534102fc03717456d948216edd"), "FZWSBqfV");
        let h = account_id_of("secretwithoutcolon");
        assert!(h.starts_with('h') && h.len() == 17 && !h.contains("secret"), "{h}");
    }

    fn webhook(extra: serde_json::Value) -> Result<()> {
        let mut cfg = serde_json::json!({"mode": "webhook", "token": "T:0"});
        cfg.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        pipe_plugin_sdk::config::parse::<AimylogicConfig>(cfg)?.check_webhook()
    }

    fn refused_key(r: Result<()>) -> String {
        match r {
            Err(PluginError::Config { path, message }) => {
                assert!(!message.contains("short-secret"), "the value is in the message: {message}");
                path
            }
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn webhook_secret_and_listen_checks() {
        assert_eq!(refused_key(webhook(serde_json::json!({"secret": ""}))), "secret");
        assert_eq!(refused_key(webhook(serde_json::json!({"secret": "short-secret"}))), "secret");
        assert!(webhook(serde_json::json!({"secret": "a-long-enough-secret"})).is_ok());
        // Loopback needs no secret; any other address does, unless explicitly allowed.
        assert!(webhook(serde_json::json!({"listen": "127.0.0.1:0"})).is_ok());
        assert!(webhook(serde_json::json!({"listen": "[::1]:0"})).is_ok());
        assert_eq!(refused_key(webhook(serde_json::json!({"listen": "0.0.0.0:8088"}))), "secret");
        assert_eq!(refused_key(webhook(serde_json::json!({"listen": "192.0.2.1:8088"}))), "secret");
        assert!(webhook(serde_json::json!({"listen": "0.0.0.0:8088", "allow_unauthenticated": true})).is_ok());
        assert_eq!(refused_key(webhook(serde_json::json!({"max_connections": 0}))), "max_connections");
        assert_eq!(refused_key(webhook(serde_json::json!({"body_timeout_seconds": 0}))), "body_timeout_seconds");
        // History mode ignores the webhook keys.
        assert!(
            pipe_plugin_sdk::config::parse::<AimylogicConfig>(serde_json::json!({"token": "T:0", "secret": ""}))
                .unwrap()
                .check_webhook()
                .is_ok()
        );
    }
}
