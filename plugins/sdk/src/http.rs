//! The HTTP client every source shares.
//!
//! One `reqwest` client per source with timeouts; GET requests returning JSON are retried with
//! exponential backoff and jitter on connection errors, timeouts, HTTP 429 and 5xx, and on
//! truncated or unparsable bodies. `Retry-After` is honoured in both its forms (seconds and
//! HTTP-date) with a floor, so `Retry-After: 0` does not mean hammering. HTTP 401/403 fail at
//! once with [`PluginError::Auth`]. Secrets registered with [`HttpClient::redact`] are removed
//! from every message this module produces.
//!
//! Politeness is shared by every clone of one client (so by all requests of a source): a token
//! bucket (`requests_per_second`, the governor crate, a hard ceiling), a cap on requests in
//! flight (fixed `concurrency`, or adaptive up to `max_concurrency`: [`concurrency`]), pacing to
//! the vendor's rate limit, as its `RateLimit-*` / `X-RateLimit-*` headers state it or as its
//! 429s teach it ([`rate_limit`]), and a retry budget for the whole run, after which requests
//! fail with [`PluginError::RetryBudgetExhausted`] so the source can checkpoint and end
//! `partial`.
//! Standard proxy variables (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`) are honoured; an extra CA
//! bundle can be trusted with [`HttpSettings::ca_file`].
//!
//! Response bodies are read as a stream and never past [`HttpSettings::max_response_bytes`]
//! (default [`DEFAULT_MAX_RESPONSE_BYTES`], 64 MiB): a larger body (by its `Content-Length`, or
//! once the bytes read pass the cap) fails the request at once, without retries, with
//! [`PluginError::ListingCut`] (reason [`crate::REASON_RESPONSE_TOO_LARGE`]), so one runaway
//! answer cannot take the process's memory.
//!
//! Credentials are bound to one origin (scheme, host, port): that of [`HttpSettings::base_url`]
//! (or, without one, of the client's first request). A request to another origin (a vendor's
//! `next` link or cursor URL) is never sent, and a redirect to another origin is never followed:
//! both fail with [`PluginError::Protocol`] naming the vendor and the two origins, so the run
//! stops (exit 1) before a header, a path token or a query token reaches a third party.
//! Redirects within the origin are followed (at most [`MAX_REDIRECTS`]). No `Referer` header is
//! ever sent: a token in a URL path would ride along in it.

pub mod concurrency;
pub mod rate_limit;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::Value;

use crate::metrics::Metrics;
use crate::{PluginError, Result};
use concurrency::{AimdSettings, Gate, Outcome, Slot};
use rate_limit::Pacer;

/// Settings of an [`HttpClient`]. The defaults suit the vendors we ship.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Name of the vendor, used in errors (`giosg rejected the credentials ...`).
    pub vendor: String,
    /// Timeout of one request, connect to last body byte.
    pub timeout: Duration,
    /// How many times one request is retried before the run fails.
    pub max_retries: u32,
    /// First backoff delay; doubled per attempt, with jitter, up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Largest backoff delay (and largest `Retry-After` we wait).
    pub max_backoff: Duration,
    /// Smallest wait after a 429, whatever `Retry-After` says.
    pub min_retry_after: Duration,
    /// Steady request rate allowed (token bucket, bursts of one second's worth); `None`: no cap.
    pub requests_per_second: Option<f64>,
    /// Requests in flight at once, when fixed (`max_concurrency` is `None`).
    pub concurrency: usize,
    /// `Some(max)`: the number of requests in flight adapts between 1 and `max` ([`concurrency`]
    /// module) and `concurrency` is not used; `None`: it is fixed at `concurrency`.
    pub max_concurrency: Option<usize>,
    /// Retries allowed for the whole run, all requests together.
    pub retry_budget: u64,
    /// A PEM bundle of extra CA certificates to trust (corporate TLS inspection).
    pub ca_file: Option<std::path::PathBuf>,
    /// The vendor's API root (`https://api.giosg.com`): requests, `next` links and redirects
    /// are allowed only to its origin (scheme, host, port). `None`: the origin of the first
    /// request the client makes.
    pub base_url: Option<String>,
    /// Largest response body read, in bytes; a larger one fails its request (module docs).
    pub max_response_bytes: u64,
}

/// Default of [`HttpSettings::max_response_bytes`]: 64 MiB, far above any page the shipped
/// vendors serve (a giosg page of 100 messages is well under 1 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

impl HttpSettings {
    /// Defaults for `vendor`: 60 s timeout, 8 retries, backoff 0.5 s → 60 s, 429 floor 1 s,
    /// bodies up to [`DEFAULT_MAX_RESPONSE_BYTES`].
    pub fn new(vendor: impl Into<String>) -> Self {
        HttpSettings {
            vendor: vendor.into(),
            timeout: Duration::from_secs(60),
            max_retries: 8,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            min_retry_after: Duration::from_secs(1),
            requests_per_second: None,
            concurrency: 8,
            max_concurrency: None,
            retry_budget: 200,
            ca_file: None,
            base_url: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

type RateLimiter = governor::DefaultDirectRateLimiter;

/// The largest `requests_per_second` accepted (one request per microsecond); larger values
/// are a configuration error rather than a limiter that cannot exist.
pub const MAX_REQUESTS_PER_SECOND: f64 = 1_000_000.0;

/// Redirects followed per request (all within the bound origin).
pub const MAX_REDIRECTS: usize = 10;

/// Why a redirect was refused: it leaves the origin the request was sent to. Carried inside
/// reqwest's redirect error and turned into a [`PluginError::Protocol`].
#[derive(Debug)]
struct CrossOriginRedirect {
    from: url::Origin,
    to: url::Origin,
}

impl std::fmt::Display for CrossOriginRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redirect from {} to {} refused", self.from.ascii_serialization(), self.to.ascii_serialization())
    }
}

impl std::error::Error for CrossOriginRedirect {}

/// Follows redirects within the origin of the request that started the chain; refuses the
/// others (credentials in headers, paths and queries must not reach another origin, and
/// reqwest strips only the standard auth headers on a cross-host redirect).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let from = attempt.previous().first().map(url::Url::origin);
        let to = attempt.url().origin();
        match from {
            Some(from) if from != to => attempt.error(CrossOriginRedirect { from, to }),
            _ if attempt.previous().len() > MAX_REDIRECTS => attempt.error("too many redirects"),
            _ => attempt.follow(),
        }
    })
}

/// A JSON-over-HTTP client with retries. Cheap to clone (shares the connection pool).
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    settings: Arc<HttpSettings>,
    default_headers: HeaderMap,
    secrets: Arc<Vec<String>>,
    metrics: Arc<Metrics>,
    limiter: Option<Arc<RateLimiter>>,
    in_flight: Arc<Gate>,
    pacer: Arc<std::sync::Mutex<Pacer>>,
    /// After a 429, every request of this source waits until then (ms since the epoch).
    paused_until_ms: Arc<std::sync::atomic::AtomicU64>,
    retries_left: Arc<std::sync::atomic::AtomicU64>,
    /// The only origin requests go to (module docs); set at the first request without a base_url.
    origin: Arc<std::sync::OnceLock<url::Origin>>,
}

impl HttpClient {
    /// A client with `settings`, sending `default_headers` (auth, accept) on every request.
    ///
    /// Errors: [`PluginError::Config`] (path `ca_file` / `requests_per_second` / `base_url`) for
    /// an unreadable CA bundle, a non-positive rate or a `base_url` that is not an http(s) URL;
    /// [`PluginError::Other`] if the TLS backend cannot be initialised.
    pub fn new(settings: HttpSettings, default_headers: HeaderMap, metrics: Arc<Metrics>) -> Result<Self> {
        let origin = std::sync::OnceLock::new();
        if let Some(base) = &settings.base_url {
            let bound = url::Url::parse(base).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
            let Some(bound) = bound else {
                return Err(PluginError::Config { path: "base_url".into(), message: "is not an http(s) URL".into() });
            };
            let _ = origin.set(bound.origin());
        }
        let mut builder = reqwest::Client::builder()
            .redirect(same_origin_redirects())
            .referer(false)
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!("pipe/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            let config_err = |message: String| PluginError::Config { path: "ca_file".into(), message };
            let pem = std::fs::read(path).map_err(|e| config_err(format!("cannot read {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| config_err(format!("{} is not a PEM certificate bundle: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(config_err(format!(
                    "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| PluginError::other(format!("cannot build the HTTP client: {e}")))?;
        let limiter = match settings.requests_per_second {
            None => None,
            // Capped so that the token bucket's period stays at least 1 µs (governor refuses a
            // zero period; `1e10` used to panic here).
            Some(rps) if rps > 0.0 && rps <= MAX_REQUESTS_PER_SECOND => {
                let period = Duration::from_secs_f64(1.0 / rps);
                let burst = std::num::NonZeroU32::new(rps.ceil().max(1.0) as u32).expect("at least one");
                let quota = governor::Quota::with_period(period).expect("positive period").allow_burst(burst);
                Some(Arc::new(governor::RateLimiter::direct(quota)))
            }
            Some(_) => {
                return Err(PluginError::Config {
                    path: "requests_per_second".into(),
                    message: format!(
                        "must be a positive number of requests per second, at most {MAX_REQUESTS_PER_SECOND}"
                    ),
                });
            }
        };
        Ok(HttpClient {
            client,
            in_flight: Arc::new(match settings.max_concurrency {
                Some(max) => Gate::adaptive(AimdSettings::new(max)),
                None => Gate::fixed(settings.concurrency),
            }),
            pacer: Arc::default(),
            paused_until_ms: Arc::default(),
            retries_left: Arc::new(std::sync::atomic::AtomicU64::new(settings.retry_budget)),
            origin: Arc::new(origin),
            settings: Arc::new(settings),
            default_headers,
            secrets: Arc::new(Vec::new()),
            metrics,
            limiter,
        })
    }

    /// Waits for everything that must pass before a request goes out: a pause after a 429
    /// (checked again after the other waits, as it may start while we wait), a free in-flight
    /// slot, the token bucket and the pacer's send slot. Returns the slot (marked sent) and the
    /// request's sequence number at the pacer.
    async fn ready_to_send(&self) -> (Slot<'_>, u64) {
        loop {
            let paused = self.paused_until_ms.load(std::sync::atomic::Ordering::Relaxed);
            let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
            if paused > now_ms {
                tokio::time::sleep(Duration::from_millis(paused - now_ms)).await;
                continue;
            }
            // The slot first, then the token: a token taken while waiting for a slot would let
            // requests out in a burst above `requests_per_second` when slots free up.
            let mut slot = self.in_flight.acquire().await;
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
            let (seq, wait) = self.pacer.lock().expect("pacer lock").reserve(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let paused = self.paused_until_ms.load(std::sync::atomic::Ordering::Relaxed);
            if paused <= chrono::Utc::now().timestamp_millis().max(0) as u64 {
                slot.sent();
                return (slot, seq);
            }
        }
    }

    /// Publishes the concurrency limit (current and time-weighted mean) and the learned rate
    /// cap in the run's metrics.
    fn note_concurrency(&self) {
        let m = &self.metrics;
        Metrics::set(&m.concurrency, self.in_flight.limit() as u64);
        Metrics::set(&m.concurrency_mean_milli, (self.in_flight.mean_limit() * 1000.0) as u64);
        Metrics::set(&m.concurrency_adaptive, u64::from(self.in_flight.is_adaptive()));
        let learned = self.pacer.lock().expect("pacer lock").learned_rate();
        Metrics::set(&m.learned_rate_milli, learned.map_or(0, |r| (r * 1000.0) as u64));
    }

    /// Takes one retry from the run's budget; false when it is spent.
    fn take_retry(&self) -> bool {
        self.retries_left
            .fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |n| {
                n.checked_sub(1)
            })
            .is_ok()
    }

    /// Registers a secret that must never appear in an error message or log line: every
    /// credential the source holds (tokens, keys, passwords), whether it travels in a header,
    /// a path or a body, since a vendor's error body may echo it.
    pub fn redact(mut self, secret: impl Into<String>) -> Self {
        let secret = secret.into();
        let secrets = Arc::make_mut(&mut self.secrets);
        for s in spellings(&secret) {
            if !s.is_empty() && !secrets.contains(&s) {
                secrets.push(s);
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self
    }

    /// `text` with every registered secret replaced by `***`, as written and percent-encoded
    /// (upper- or lower-case hex, `+` or `%20` for a space).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets.iter() {
            out = out.replace(s.as_str(), "***");
        }
        out
    }

    /// `e` with this client's secrets scrubbed from its message (a protocol error built from a
    /// URL whose path carries a credential).
    pub fn scrub_error(&self, e: PluginError) -> PluginError {
        match e {
            PluginError::Protocol { vendor, message } => {
                PluginError::Protocol { vendor, message: self.scrub(&message) }
            }
            other => other,
        }
    }

    /// The origin requests are bound to, once known (`http://127.0.0.1:8080`).
    pub fn origin(&self) -> Option<String> {
        self.origin.get().map(url::Origin::ascii_serialization)
    }

    /// Checks that `url` is in the bound origin (binding it at the first request when no
    /// `base_url` was given): the credentials go nowhere else.
    fn check_origin(&self, url: &str) -> Result<()> {
        let target = url::Url::parse(url).map_err(|_| PluginError::Protocol {
            vendor: self.settings.vendor.clone(),
            message: self.scrub(&format!("not an absolute URL: {}", path_of(url))),
        })?;
        let to = target.origin();
        let bound = self.origin.get_or_init(|| to.clone());
        if *bound == to {
            return Ok(());
        }
        Err(cross_origin(&self.settings.vendor, "a link (next page or cursor URL) points", bound, &to))
    }

    /// The error of a response body over `max_response_bytes`.
    fn too_large(&self, url: &str) -> PluginError {
        PluginError::ListingCut {
            vendor: self.settings.vendor.clone(),
            reason: crate::REASON_RESPONSE_TOO_LARGE,
            message: self.scrub(&format!(
                "the response to {} is larger than max_response_bytes ({} bytes); it was not read further",
                path_of(url),
                self.settings.max_response_bytes
            )),
        }
    }

    /// A header value that is marked sensitive (hidden from reqwest's own debug output).
    pub fn sensitive_header(value: &str) -> Result<HeaderValue> {
        let mut v = HeaderValue::from_str(value).map_err(|_| PluginError::Config {
            path: "token".into(),
            message: "contains characters not allowed in an HTTP header".into(),
        })?;
        v.set_sensitive(true);
        Ok(v)
    }

    /// The vendor name this client reports in errors.
    pub fn vendor(&self) -> &str {
        &self.settings.vendor
    }

    /// GETs `url` and parses the body as JSON, retrying as the module docs describe.
    ///
    /// Errors: [`PluginError::Auth`] on 401/403; [`PluginError::Http`] on any other 4xx, or when
    /// this request's retries are exhausted (the message names the last failure and the URL,
    /// scrubbed); [`PluginError::RetryBudgetExhausted`] when the run's retry budget is spent;
    /// [`PluginError::ListingCut`] for a body over `max_response_bytes`.
    pub async fn get_json(&self, url: &str) -> Result<Value> {
        Ok(self.request_json(reqwest::Method::GET, url, None).await?.0)
    }

    /// [`Self::get_json`], also giving the response headers (a `Link` header's next page).
    pub async fn get_json_with_headers(&self, url: &str) -> Result<(Value, HeaderMap)> {
        self.request_json(reqwest::Method::GET, url, None).await
    }

    /// POSTs `body` as JSON (GraphQL) and parses the answer, with the retries of [`Self::get_json`].
    pub async fn post_json(&self, url: &str, body: &Value) -> Result<Value> {
        Ok(self.request_json(reqwest::Method::POST, url, Some(body)).await?.0)
    }

    async fn request_json(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(Value, HeaderMap)> {
        let s = &self.settings;
        self.check_origin(url)?;
        let mut attempt: u32 = 0;
        loop {
            // Held until this attempt ends (its body read): dropping it reports how it ended.
            let (mut slot, seq) = self.ready_to_send().await;
            let sent_at = Instant::now();
            Metrics::add(&self.metrics.requests, 1);
            self.note_concurrency();
            let mut request = self.client.request(method.clone(), url).headers(self.default_headers.clone());
            if let Some(body) = body {
                request = request.json(body);
            }
            let sent = request.send().await;
            crate::metrics::record_http_request(&s.vendor, sent.as_ref().ok().map(|r| r.status().as_u16()));
            let failure = match sent {
                Err(e) if e.is_redirect() => {
                    return Err(match find_source::<CrossOriginRedirect>(&e) {
                        Some(r) => cross_origin(
                            &s.vendor,
                            &format!("{} redirected {}", s.vendor, self.scrub(&path_of(url))),
                            &r.from,
                            &r.to,
                        ),
                        None => PluginError::Http(self.scrub(&format!(
                            "{}: {} on {}",
                            s.vendor,
                            error_chain(&e),
                            path_of(url)
                        ))),
                    });
                }
                Err(e) => {
                    // Timeouts and refused or cut connections: the vendor is overloaded (or away).
                    slot.ended(Outcome::BackPressure);
                    Failure::retry(format!("request failed: {}", error_chain(&e)), None)
                }
                Ok(resp) => {
                    let status = resp.status();
                    let answered = Instant::now();
                    if let Some(quota) = rate_limit::quota_from_headers(resp.headers(), std::time::SystemTime::now()) {
                        self.pacer.lock().expect("pacer lock").on_quota(answered, seq, quota);
                    }
                    // The latency sample is the time to the answer's head, whatever the body's size.
                    slot.ended(if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        Outcome::BackPressure
                    } else {
                        Outcome::Answered(answered - sent_at)
                    });
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        Metrics::add(&self.metrics.throttled_responses, 1);
                        self.pacer.lock().expect("pacer lock").on_throttled(answered, seq);
                    } else {
                        self.pacer.lock().expect("pacer lock").on_success(answered);
                    }
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        return Err(PluginError::Auth {
                            vendor: s.vendor.clone(),
                            status: status.as_u16(),
                            what: self.scrub(&path_of(url)),
                        });
                    }
                    if status.is_success() {
                        let headers = resp.headers().clone();
                        match read_capped(resp, s.max_response_bytes).await {
                            Ok(Ok(body)) => match serde_json::from_slice::<Value>(&body) {
                                Ok(v) => return Ok((v, headers)),
                                Err(e) => {
                                    Failure::retry(format!("unparsable JSON body ({} bytes): {e}", body.len()), None)
                                }
                            },
                            Ok(Err(e)) => Failure::retry(format!("body read failed: {}", error_chain(&e)), None),
                            Err(TooLarge) => return Err(self.too_large(url)),
                        }
                    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        let wait = retry_after(resp.headers()).map(|w| w.max(s.min_retry_after));
                        let wait = if status == StatusCode::TOO_MANY_REQUESTS {
                            Some(wait.unwrap_or(s.min_retry_after))
                        } else {
                            wait
                        };
                        Failure::retry(format!("HTTP {status}"), wait)
                    } else {
                        // Only the start of an error body is quoted: never read more than that.
                        let body = match read_capped(resp, ERROR_BODY_BYTES).await {
                            Ok(Ok(b)) => b,
                            _ => Vec::new(),
                        };
                        let snippet: String = String::from_utf8_lossy(&body).chars().take(300).collect();
                        let message =
                            self.scrub(&format!("{} answered HTTP {status} for {}: {snippet}", s.vendor, path_of(url)));
                        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                            return Err(PluginError::NotFound { vendor: s.vendor.clone(), message });
                        }
                        return Err(PluginError::Http(message));
                    }
                }
            };
            drop(slot);
            attempt += 1;
            if !self.take_retry() {
                return Err(PluginError::RetryBudgetExhausted {
                    vendor: s.vendor.clone(),
                    message: self.scrub(&format!("last failure: {} on {}", failure.reason, path_of(url))),
                });
            }
            if attempt > s.max_retries {
                return Err(PluginError::Http(self.scrub(&format!(
                    "{}: giving up on {} after {} attempts; last failure: {}",
                    s.vendor,
                    path_of(url),
                    attempt,
                    failure.reason
                ))));
            }
            let delay = failure.wait.unwrap_or_else(|| backoff(s, attempt)).min(s.max_backoff);
            Metrics::add(&self.metrics.retries, 1);
            crate::metrics::record_http_retry(&s.vendor, failure.wait.map(|_| delay));
            if failure.wait.is_some() {
                let until = chrono::Utc::now().timestamp_millis().max(0) as u64 + delay.as_millis() as u64;
                self.paused_until_ms.fetch_max(until, std::sync::atomic::Ordering::Relaxed);
                self.metrics.throttled_until_ms.fetch_max(until, std::sync::atomic::Ordering::Relaxed);
            }
            tracing::debug!(vendor = %s.vendor, url = %self.scrub(&path_of(url)), attempt, delay_ms = delay.as_millis() as u64, reason = %self.scrub(&failure.reason), "retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// The most of an error body (4xx) read, for the snippet quoted in the error.
const ERROR_BODY_BYTES: u64 = 16 * 1024;

/// A body longer than the cap it was read with.
struct TooLarge;

/// The body of `resp`, read chunk by chunk and never past `cap` bytes: `Err(TooLarge)` as soon
/// as the `Content-Length` or the bytes read pass it, `Ok(Err(e))` when reading fails.
async fn read_capped(
    mut resp: reqwest::Response,
    cap: u64,
) -> std::result::Result<std::result::Result<Vec<u8>, reqwest::Error>, TooLarge> {
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(TooLarge);
    }
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0).min(cap) as usize);
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > cap {
                    return Err(TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Ok(body)),
            Err(e) => return Ok(Err(e)),
        }
    }
}

struct Failure {
    reason: String,
    wait: Option<Duration>,
}

impl Failure {
    fn retry(reason: String, wait: Option<Duration>) -> Self {
        Failure { reason, wait }
    }
}

/// Exponential backoff with "full jitter" between half and all of the exponential step.
fn backoff(s: &HttpSettings, attempt: u32) -> Duration {
    let exp = s.initial_backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let exp = exp.min(s.max_backoff);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let frac = 0.5 + (nanos % 1000) as f64 / 2000.0;
    exp.mul_f64(frac)
}

/// `Retry-After` as seconds or HTTP-date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// The path and query of a URL, for messages (no scheme, host or credentials).
fn path_of(url: &str) -> String {
    match url.find("://").and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j)) {
        Some(start) => url[start..].to_string(),
        None => url.to_string(),
    }
}

/// The refusal of a request outside the bound origin.
fn cross_origin(vendor: &str, what: &str, bound: &url::Origin, to: &url::Origin) -> PluginError {
    let (bound, to) = (bound.ascii_serialization(), to.ascii_serialization());
    PluginError::Protocol {
        vendor: vendor.into(),
        message: format!(
            "{what} to the origin {to}, outside the origin {bound} of base_url: not followed, the credentials \
             are sent only to {bound}"
        ),
    }
}

/// The spellings of a secret that can show up in a URL or an echoed body: as is, and
/// percent-encoded (every non-alphanumeric byte, or only what a path segment or a form
/// encodes), with upper- and lower-case hex.
fn spellings(secret: &str) -> Vec<String> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let full = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
    let mut out = vec![secret.to_string(), form.replace('+', "%20"), form, full];
    let lower: Vec<String> = out[1..].iter().map(|s| lower_hex(s)).collect();
    out.extend(lower);
    out
}

/// `s` with the hex digits of its `%XX` escapes in lower case.
fn lower_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut hex_left = 0;
    for c in s.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The first error of type `T` in `e`'s source chain.
fn find_source<'a, T: std::error::Error + 'static>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<T>() {
            return Some(t);
        }
        cur = c.source();
    }
    None
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_both_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let future = chrono::Utc::now() + chrono::Duration::seconds(30);
        h.insert(RETRY_AFTER, HeaderValue::from_str(&future.to_rfc2822()).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let s = HttpSettings::new("x");
        assert!(backoff(&s, 1) <= Duration::from_millis(500));
        assert!(backoff(&s, 4) >= Duration::from_secs(2));
        assert!(backoff(&s, 30) <= s.max_backoff);
    }

    #[test]
    fn path_hides_host() {
        assert_eq!(path_of("https://h.example/api/v5/x?cursor=1"), "/api/v5/x?cursor=1");
    }

    #[test]
    fn requests_per_second_beyond_one_per_microsecond_is_a_config_error_not_a_panic() {
        let with_rate = |rps: f64| {
            let mut settings = HttpSettings::new("v");
            settings.requests_per_second = Some(rps);
            HttpClient::new(settings, HeaderMap::new(), Arc::default())
        };
        for rps in [1e10, f64::INFINITY, f64::NAN, 0.0, -1.0] {
            match with_rate(rps) {
                Err(PluginError::Config { path, .. }) => assert_eq!(path, "requests_per_second", "{rps}"),
                Err(other) => panic!("{rps}: {other}"),
                Ok(_) => panic!("{rps} was accepted"),
            }
        }
        assert!(with_rate(MAX_REQUESTS_PER_SECOND).is_ok());
        assert!(with_rate(0.5).is_ok());
    }

    #[test]
    fn scrub_removes_secrets() {
        let c = HttpClient::new(HttpSettings::new("v"), HeaderMap::new(), Arc::default()).unwrap().redact("tok123");
        assert_eq!(c.scrub("/chatapi/tok123/client"), "/chatapi/***/client");
        let e = PluginError::Protocol { vendor: "v".into(), message: "no array in /chatapi/tok123/x".into() };
        match c.scrub_error(e) {
            PluginError::Protocol { message, .. } => assert_eq!(message, "no array in /chatapi/***/x"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scrub_removes_percent_encoded_secrets() {
        let c = HttpClient::new(HttpSettings::new("v"), HeaderMap::new(), Arc::default()).unwrap().redact("a b/c+д");
        for spelled in ["a b/c+д", "a%20b%2Fc%2B%D0%B4", "a+b%2Fc%2B%D0%B4", "a%20b%2fc%2b%d0%b4", "a%20b%2Fc%2B%D0%B4"]
        {
            assert_eq!(c.scrub(&format!("x={spelled}&y")), "x=***&y", "{spelled}");
        }
    }

    #[test]
    fn requests_outside_the_base_url_origin_are_refused() {
        let settings = HttpSettings { base_url: Some("http://127.0.0.1:9/api".into()), ..HttpSettings::new("v") };
        let c = HttpClient::new(settings, HeaderMap::new(), Arc::default()).unwrap();
        assert!(c.check_origin("http://127.0.0.1:9/other?x=1").is_ok());
        for elsewhere in ["http://127.0.0.1:10/api", "https://127.0.0.1:9/api", "http://localhost:9/api"] {
            let err = c.check_origin(elsewhere).unwrap_err().to_string();
            assert!(err.contains("http://127.0.0.1:9") && err.contains("v"), "{err}");
        }
        let bad = HttpSettings { base_url: Some("ftp://x".into()), ..HttpSettings::new("v") };
        let Err(PluginError::Config { path, .. }) = HttpClient::new(bad, HeaderMap::new(), Arc::default()) else {
            panic!("ftp accepted")
        };
        assert_eq!(path, "base_url");
    }

    #[test]
    fn without_base_url_the_first_request_binds_the_origin() {
        let c = HttpClient::new(HttpSettings::new("v"), HeaderMap::new(), Arc::default()).unwrap();
        assert!(c.check_origin("http://a.example/x").is_ok());
        assert_eq!(c.origin().as_deref(), Some("http://a.example"));
        assert!(c.check_origin("http://b.example/x").is_err());
    }
}
