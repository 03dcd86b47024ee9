//! Transport-level faults of the simulator, for the HTTP-layer tests and benchmarks: added
//! latency, a share of 5xx answers, truncated bodies, connections cut mid-body, and a
//! server-side rate limit that answers 429 with `Retry-After`. Which request gets which fault is
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
}
