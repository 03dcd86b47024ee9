//! The HTTP keys every HTTP source shares, with per-vendor defaults.
//!
//! A source embeds [`HttpConfig<D>`] in its config with `#[serde(flatten)]`, so the keys stay
//! flat in the pipeline's `[source]` table (`base_url`, `concurrency`, `max_concurrency`,
//! `requests_per_second`, `retry_budget`, `ca_file`, `max_response_bytes`) and its JSON Schema
//! lists them beside the vendor's own keys. The type parameter `D` ([`HttpDefaults`]) supplies
//! the vendor's defaults: its API root, and optionally a fixed concurrency, another ceiling of
//! the adaptive one, retry budget or request timeout. The timeouts are not keys:
//! they are the vendor's defaults, applied by [`HttpConfig::settings`].
//!
//! ```
//! use pipe_plugin_sdk::source_kit::{HttpConfig, HttpDefaults};
//!
//! #[derive(Debug, Clone, Copy)]
//! struct AcmeHttp;
//! impl HttpDefaults for AcmeHttp {
//!     const VENDOR: &'static str = "acme";
//!     const BASE_URL: &'static str = "https://api.acme.example";
//! }
//!
//! #[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct AcmeConfig {
//!     #[serde(flatten)]
//!     http: HttpConfig<AcmeHttp>,
//!     /// The vendor's own key.
//!     account: String,
//! }
//!
//! let cfg: AcmeConfig =
//!     pipe_plugin_sdk::config::parse(serde_json::json!({"account": "a", "concurrency": 2})).unwrap();
//! assert_eq!(cfg.http.base_url, "https://api.acme.example");
//! assert_eq!((cfg.http.settings().concurrency, cfg.http.settings().max_concurrency), (2, None));
//! let adaptive: AcmeConfig = pipe_plugin_sdk::config::parse(serde_json::json!({"account": "a"})).unwrap();
//! assert_eq!(adaptive.http.settings().max_concurrency, Some(64));
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::http::concurrency::DEFAULT_MAX_CONCURRENCY;
use crate::http::{DEFAULT_MAX_RESPONSE_BYTES, HttpSettings};

/// Smallest `max_response_bytes` applied (smaller values are raised to it).
pub const MIN_MAX_RESPONSE_BYTES: u64 = 1024;
use crate::{PluginError, Result};

/// A vendor's defaults for [`HttpConfig`]: implemented by a unit type of the source crate.
pub trait HttpDefaults: std::fmt::Debug + Clone + Send + Sync + 'static {
    /// The vendor name, used in HTTP errors (`giosg rejected the credentials ...`).
    const VENDOR: &'static str;
    /// Default of `base_url`: the vendor's public API root (scheme, host, optional path).
    const BASE_URL: &'static str;
    /// Default of `concurrency`: a fixed number of requests in flight. `None` (adaptive, up to
    /// `max_concurrency`) unless the vendor says otherwise.
    const CONCURRENCY: Option<u32> = None;
    /// Default of `max_concurrency`, the ceiling of the adaptive concurrency. 64 unless the
    /// vendor says otherwise.
    const MAX_CONCURRENCY: u32 = DEFAULT_MAX_CONCURRENCY as u32;
    /// Default of `retry_budget`: retries for the whole run. 200 unless the vendor says otherwise.
    const RETRY_BUDGET: u64 = 200;
    /// Timeout of one request, connect to last body byte. 60 s unless the vendor says otherwise.
    const TIMEOUT: Duration = Duration::from_secs(60);
}

/// The HTTP keys of a source's `[source]` table (flattened into the vendor's config).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(bound = "")]
#[schemars(bound = "D: HttpDefaults")]
pub struct HttpConfig<D: HttpDefaults> {
    /// API root of the vendor (http or https), without the API's version path. Default: the
    /// vendor's public API (this key's `default`); point it at a regional host, a proxy or a
    /// simulator. Credentials are sent only to its origin (scheme, host, port): a `next` link
    /// or redirect to another origin stops the run (exit 1).
    #[serde(default = "default_base_url::<D>")]
    pub base_url: String,
    /// A fixed number of requests in flight at once (and of items: chats, conversations,
    /// clients, fetched at the same time). Default: not set, and the number adapts by itself
    /// (AIMD, as Vector's adaptive request concurrency): it starts at 2, grows while the
    /// vendor's latency stays flat, and shrinks on rising latency, timeouts, 5xx and 429,
    /// between 1 and `max_concurrency`.
    #[serde(default = "default_concurrency::<D>")]
    pub concurrency: Option<u32>,
    /// Ceiling of the adaptive concurrency (when `concurrency` is not set), and the items
    /// fetched at the same time. Default 64.
    #[serde(default = "default_max_concurrency::<D>")]
    #[schemars(range(min = 1))]
    pub max_concurrency: u32,
    /// Cap on the steady request rate (requests per second, fractions allowed, at most 1000000), shared by all
    /// requests of this source: a hard ceiling, whatever the adaptive concurrency. Default: no
    /// cap (HTTP 429 and `Retry-After` are still honoured, a vendor's `RateLimit-*` or
    /// `X-RateLimit-*` headers pace the requests, and a vendor that answers 429 without them
    /// gets a rate learned from its 429s).
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Retries allowed for the whole run (HTTP 429, 5xx, timeouts, broken bodies). When spent,
    /// the run commits what it has and ends `partial` (exit 3). Default 200.
    #[serde(default = "default_retry_budget::<D>")]
    pub retry_budget: u64,
    /// Extra CA certificates to trust, as a PEM bundle (corporate TLS inspection).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Largest response body read, in bytes (at least 1024). A larger answer is not read past
    /// this: it ends its listing (or its conversation) with a `response_too_large` dead letter
    /// and the run ends `partial` (exit 3). Default 67108864 (64 MiB).
    #[serde(default = "default_max_response_bytes")]
    #[schemars(range(min = 1024))]
    pub max_response_bytes: u64,
    #[serde(skip)]
    defaults: PhantomData<D>,
}

fn default_base_url<D: HttpDefaults>() -> String {
    D::BASE_URL.to_string()
}
fn default_concurrency<D: HttpDefaults>() -> Option<u32> {
    D::CONCURRENCY
}
fn default_max_concurrency<D: HttpDefaults>() -> u32 {
    D::MAX_CONCURRENCY
}
fn default_retry_budget<D: HttpDefaults>() -> u64 {
    D::RETRY_BUDGET
}
fn default_max_response_bytes() -> u64 {
    DEFAULT_MAX_RESPONSE_BYTES
}

impl<D: HttpDefaults> Default for HttpConfig<D> {
    /// Every key at the vendor's default.
    fn default() -> Self {
        HttpConfig {
            base_url: default_base_url::<D>(),
            concurrency: D::CONCURRENCY,
            max_concurrency: D::MAX_CONCURRENCY,
            requests_per_second: None,
            retry_budget: D::RETRY_BUDGET,
            ca_file: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            defaults: PhantomData,
        }
    }
}

impl<D: HttpDefaults> HttpConfig<D> {
    /// `base_url` without a trailing `/`.
    ///
    /// Errors: [`PluginError::Config`] (path `base_url`) when it is not an http(s) URL.
    pub fn base_url(&self) -> Result<&str> {
        let base = self.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(PluginError::Config {
                path: "base_url".into(),
                // The value is not quoted: it may come from an environment variable.
                message: "is not an http(s) URL (it must start with http:// or https://)".into(),
            });
        }
        Ok(base)
    }

    /// How many items (chats, conversations, clients) a source fetches at the same time: the
    /// fixed `concurrency`, or `max_concurrency` when it adapts (so the items never cap the
    /// adaptive limit); at least 1 (0 would stall every request).
    pub fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(self.max_concurrency).max(1) as usize
    }

    /// True when the concurrency adapts (no fixed `concurrency`).
    pub fn is_adaptive(&self) -> bool {
        self.concurrency.is_none()
    }

    /// The settings of the source's [`crate::http::HttpClient`]: these keys over the SDK's
    /// retry and backoff defaults ([`HttpSettings::new`]) and the vendor's timeout.
    pub fn settings(&self) -> HttpSettings {
        HttpSettings {
            timeout: D::TIMEOUT,
            requests_per_second: self.requests_per_second,
            concurrency: self.concurrency(),
            max_concurrency: self.is_adaptive().then(|| self.max_concurrency.max(1) as usize),
            retry_budget: self.retry_budget,
            ca_file: self.ca_file.as_ref().map(std::path::PathBuf::from),
            base_url: Some(self.base_url.clone()),
            // A cap below one small page would refuse every answer.
            max_response_bytes: self.max_response_bytes.max(MIN_MAX_RESPONSE_BYTES),
            ..HttpSettings::new(D::VENDOR)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config;

    #[derive(Debug, Clone, Copy)]
    struct Plain;
    impl HttpDefaults for Plain {
        const VENDOR: &'static str = "plain";
        const BASE_URL: &'static str = "https://plain.example";
    }

    #[derive(Debug, Clone, Copy)]
    struct Tuned;
    impl HttpDefaults for Tuned {
        const VENDOR: &'static str = "tuned";
        const BASE_URL: &'static str = "https://tuned.example/api";
        const CONCURRENCY: Option<u32> = Some(16);
        const RETRY_BUDGET: u64 = 5;
        const TIMEOUT: Duration = Duration::from_secs(5);
    }

    #[derive(Debug, Clone, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields, bound = "")]
    #[schemars(bound = "D: HttpDefaults")]
    struct Cfg<D: HttpDefaults> {
        #[serde(flatten)]
        http: HttpConfig<D>,
        /// A vendor key.
        #[allow(dead_code)]
        org: String,
    }

    #[test]
    fn defaults_come_from_the_vendor() {
        let p: Cfg<Plain> = config::parse(json!({"org": "o"})).unwrap();
        let s = p.http.settings();
        assert_eq!(
            (p.http.base_url.as_str(), s.max_concurrency, s.retry_budget),
            ("https://plain.example", Some(64), 200)
        );
        assert_eq!(p.http.concurrency(), 64, "items fetched at once never cap the adaptive limit");
        assert_eq!((s.vendor.as_str(), s.timeout, s.requests_per_second), ("plain", Duration::from_secs(60), None));
        assert_eq!(s.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
        let t: Cfg<Tuned> = config::parse(json!({"org": "o"})).unwrap();
        let s = t.http.settings();
        assert_eq!((t.http.base_url.as_str(), s.concurrency, s.retry_budget), ("https://tuned.example/api", 16, 5));
        assert_eq!(s.max_concurrency, None, "a fixed concurrency stays fixed");
        assert_eq!((s.vendor.as_str(), s.timeout), ("tuned", Duration::from_secs(5)));
        let d = HttpConfig::<Tuned>::default();
        assert_eq!((d.base_url.as_str(), d.concurrency, d.retry_budget), ("https://tuned.example/api", Some(16), 5));
    }

    #[test]
    fn keys_stay_flat_and_are_read() {
        let c: Cfg<Plain> = config::parse(json!({
            "org": "o", "base_url": "http://127.0.0.1:9/", "concurrency": 0,
            "requests_per_second": 2, "retry_budget": 7, "ca_file": "ca.pem", "max_response_bytes": 5000
        }))
        .unwrap();
        assert_eq!(c.http.settings().max_response_bytes, 5000);
        assert_eq!(c.http.base_url().unwrap(), "http://127.0.0.1:9");
        let s = c.http.settings();
        assert_eq!(s.concurrency, 1, "0 would stall: at least one request in flight");
        assert_eq!((s.requests_per_second, s.retry_budget), (Some(2.0), 7));
        assert_eq!(s.ca_file.as_deref(), Some(std::path::Path::new("ca.pem")));
    }

    #[test]
    fn bad_values_name_their_key_and_unknown_keys_are_refused() {
        let path = |v| match config::parse::<Cfg<Plain>>(v) {
            Err(PluginError::Config { path, .. }) => path,
            other => panic!("expected a config error, got {other:?}"),
        };
        assert_eq!(path(json!({"org": "o", "concurrency": "four"})), "concurrency");
        assert_eq!(path(json!({"org": "o", "retry_budget": -1})), "retry_budget");
        assert_eq!(path(json!({"org": 5})), "org");
        assert_eq!(path(json!({"org": "o", "colour": "blue"})), "colour");
        let c: Cfg<Plain> = config::parse(json!({"org": "o", "base_url": "ftp://x"})).unwrap();
        let Err(PluginError::Config { path, .. }) = c.http.base_url() else { panic!("ftp accepted") };
        assert_eq!(path, "base_url");
    }

    #[test]
    fn schema_lists_the_keys_flat_with_the_vendor_defaults() {
        let s = config::schema_of::<Cfg<Tuned>>();
        let props = s["properties"].as_object().unwrap();
        let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "base_url",
                "ca_file",
                "concurrency",
                "max_concurrency",
                "max_response_bytes",
                "org",
                "requests_per_second",
                "retry_budget"
            ]
        );
        assert_eq!(props["max_response_bytes"]["default"], json!(64 * 1024 * 1024));
        assert_eq!(props["base_url"]["default"], json!("https://tuned.example/api"));
        assert_eq!(props["concurrency"]["default"], json!(16));
        assert_eq!(props["max_concurrency"]["default"], json!(64));
        assert_eq!(props["retry_budget"]["default"], json!(5));
        assert_eq!(s["additionalProperties"], json!(false));
        assert_eq!(s["required"], json!(["org"]));
    }
}
