//! Transport-level faults of the simulator, for the HTTP-layer tests and benchmarks: added
//! latency, a share of 5xx answers, truncated bodies, connections cut mid-body, and
//! server-side rate limits that answer 429 with `Retry-After`: a token bucket that says nothing
//! of itself, and a fixed window that can state its quota in `RateLimit-*` or `X-RateLimit-*`
//! headers on every answer. Which request gets which fault is
//! decided by a hash of its number, so a run is reproducible.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Fault settings; the default is a perfect server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpFaults {
    /// Added to every answer.
    pub latency: Duration,
    /// Share of requests answered 500/502/503 (0.0–1.0).
    pub error_rate: f64,
    /// Share answered 200 with the JSON body cut in half.
    pub truncate_rate: f64,
    /// Share whose connection is cut after the first body bytes.
    pub reset_rate: f64,
    /// Requests per second allowed (token bucket, one second of burst); over it: 429 with
    /// `Retry-After: 1`.
    pub rate_limit: Option<f64>,
    /// A fixed-window rate limit (checked after `rate_limit`).
    pub window_limit: Option<WindowLimit>,
}

/// `limit` requests per `window`, the windows aligned to the Unix epoch (so a reset stated as
/// a Unix time in whole seconds is exact). Past the limit: 429 with `Retry-After` (whole
/// seconds to the window's end, rounded up).
#[derive(Clone, Debug, PartialEq)]
pub struct WindowLimit {
    /// Requests allowed per window.
    pub limit: u64,
    /// The window's length (whole seconds work best: headers state seconds).
    pub window: Duration,
    /// Which headers state the quota on every answer; `None`: none.
    pub headers: Option<QuotaHeaders>,
}

/// The header forms a simulator can state its quota in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaHeaders {
    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds until, rounded up).
    Ietf,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (a Unix time in
    /// seconds, as GitHub sends it).
    X,
}

/// What the fixed window decided for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WindowDecision {
    /// False: answer 429.
    pub(crate) allowed: bool,
    /// Seconds to the window's end, rounded up (for `Retry-After`).
    pub(crate) retry_after: u64,
    /// Headers to add to the answer, whatever it is.
    pub(crate) headers: Vec<(&'static str, String)>,
}

/// The fault picked for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    ServerError(u16),
    Truncate,
    Reset,
    RateLimited,
}

/// One request as the simulator saw it: when (since the simulator started) and what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// Arrival time since the simulator started.
    pub at: Duration,
    /// `METHOD path?query`.
    pub line: String,
    /// HTTP status answered.
    pub status: u16,
}

/// Fault decisions and the server-side token bucket.
pub(crate) struct FaultState {
    pub(crate) faults: Mutex<HttpFaults>,
    bucket: Mutex<(f64, Instant)>,
    /// The fixed window's number and the requests counted in it.
    window: Mutex<(u128, u64)>,
    pub(crate) started: Instant,
}

/// A well-spread hash of the request number, in [0, 1).
fn unit(n: u64, salt: u64) -> f64 {
    let mut z = n.wrapping_add(salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl FaultState {
    pub(crate) fn new() -> Self {
        Self {
            faults: Mutex::new(HttpFaults::default()),
            bucket: Mutex::new((0.0, Instant::now())),
            window: Mutex::new((0, 0)),
            started: Instant::now(),
        }
    }

    pub(crate) fn set(&self, f: HttpFaults) {
        *self.bucket.lock().expect("bucket") = (f.rate_limit.unwrap_or(0.0), Instant::now());
        *self.faults.lock().expect("faults") = f;
    }

    pub(crate) fn latency(&self) -> Duration {
        self.faults.lock().expect("faults").latency
    }

    /// Counts a request in the fixed window, if one is set: whether it is allowed, and the
    /// quota headers of its answer.
    pub(crate) fn window_check(&self) -> Option<WindowDecision> {
        let w = self.faults.lock().expect("faults").window_limit.clone()?;
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let len = w.window.as_nanos().max(1);
        let number = since_epoch.as_nanos() / len;
        let end = Duration::from_nanos(((number + 1) * len) as u64);
        let mut state = self.window.lock().expect("window");
        if state.0 != number {
            *state = (number, 0);
        }
        state.1 += 1;
        let allowed = state.1 <= w.limit;
        let remaining = w.limit.saturating_sub(state.1);
        let until = end.saturating_sub(since_epoch);
        let retry_after = until.as_secs_f64().ceil().max(1.0) as u64;
        let headers = match w.headers {
            None => Vec::new(),
            Some(QuotaHeaders::Ietf) => vec![
                ("ratelimit-limit", w.limit.to_string()),
                ("ratelimit-remaining", remaining.to_string()),
                ("ratelimit-reset", (until.as_secs_f64().ceil() as u64).to_string()),
            ],
            Some(QuotaHeaders::X) => vec![
                ("x-ratelimit-limit", w.limit.to_string()),
                ("x-ratelimit-remaining", remaining.to_string()),
                ("x-ratelimit-reset", end.as_secs_f64().ceil().to_string()),
            ],
        };
        Some(WindowDecision { allowed, retry_after, headers })
    }

    /// The fault for request number `n`.
    pub(crate) fn pick(&self, n: u64) -> Fault {
        let f = self.faults.lock().expect("faults").clone();
        if let Some(rate) = f.rate_limit {
            let mut b = self.bucket.lock().expect("bucket");
            let now = Instant::now();
            b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * rate).min(rate.max(1.0));
            b.1 = now;
            if b.0 < 1.0 {
                return Fault::RateLimited;
            }
            b.0 -= 1.0;
        }
        let x = unit(n, 1);
        if x < f.error_rate {
            return Fault::ServerError([500, 502, 503][(n % 3) as usize]);
        }
        if x < f.error_rate + f.truncate_rate {
            return Fault::Truncate;
        }
        if x < f.error_rate + f.truncate_rate + f.reset_rate {
            return Fault::Reset;
        }
        Fault::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_roughly_honoured_and_reproducible() {
        let s = FaultState::new();
        s.set(HttpFaults { error_rate: 0.1, truncate_rate: 0.05, reset_rate: 0.05, ..Default::default() });
        let picks: Vec<Fault> = (1..=10_000).map(|n| s.pick(n)).collect();
        let count = |f: fn(&Fault) -> bool| picks.iter().filter(|p| f(p)).count();
        let errors = count(|p| matches!(p, Fault::ServerError(_)));
        assert!((800..1200).contains(&errors), "{errors}");
        assert!((350..650).contains(&count(|p| *p == Fault::Truncate)));
        assert_eq!(picks, (1..=10_000).map(|n| s.pick(n)).collect::<Vec<_>>());
    }

    #[test]
    fn rate_limit_allows_a_burst_then_throttles() {
        let s = FaultState::new();
        s.set(HttpFaults { rate_limit: Some(5.0), ..Default::default() });
        let ok = (1..=20).filter(|n| s.pick(*n) != Fault::RateLimited).count();
        assert_eq!(ok, 5, "one second of burst");
    }

    #[test]
    fn a_fixed_window_counts_and_states_its_quota() {
        let s = FaultState::new();
        assert_eq!(s.window_check(), None);
        let limit = WindowLimit { limit: 3, window: Duration::from_secs(3600), headers: Some(QuotaHeaders::Ietf) };
        s.set(HttpFaults { window_limit: Some(limit.clone()), ..Default::default() });
        // An hour-long window: all of these fall in one window unless an hour boundary passes.
        let decisions: Vec<WindowDecision> = (0..5).map(|_| s.window_check().unwrap()).collect();
        if decisions[4].headers[2].1 != "3600" {
            assert_eq!(decisions.iter().filter(|d| d.allowed).count(), 3);
            let remaining: Vec<&str> = decisions.iter().map(|d| d.headers[1].1.as_str()).collect();
            assert_eq!(remaining, ["2", "1", "0", "0", "0"]);
        }
        assert_eq!(decisions[0].headers[0], ("ratelimit-limit", "3".to_string()));
        s.set(HttpFaults {
            window_limit: Some(WindowLimit { headers: Some(QuotaHeaders::X), ..limit }),
            ..Default::default()
        });
        let reset: u64 = s.window_check().unwrap().headers[2].1.parse().unwrap();
        assert!(reset > 1_700_000_000, "a Unix time: {reset}");
    }
}
