//! A webhook sender like Aimylogic's: POSTs JSON arrays of events and retries each POST until
//! it is acknowledged (2xx).

use std::time::Duration;

use serde_json::Value;

/// What became of one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    /// Answered 2xx after `attempts` tries.
    Acked {
        /// Tries it took.
        attempts: u32,
    },
    /// Answered with this 4xx (not retried: the body is refused).
    Refused(u16),
    /// Still not acknowledged when the sender gave up (connection refused, 5xx, timeouts).
    GaveUp,
}

/// Sends webhook POSTs to one URL.
#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    url: String,
    /// Tries per POST before giving up.
    pub max_attempts: u32,
    /// Pause between tries.
    pub retry_pause: Duration,
}

impl WebhookSender {
    /// A sender to `url` (e.g. `http://127.0.0.1:8088/`), 60 tries 250 ms apart, 20 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("reqwest client");
        WebhookSender { client, url: url.into(), max_attempts: 60, retry_pause: Duration::from_millis(250) }
    }

    /// POSTs `events` (a JSON array) until acknowledged, refused or out of tries.
    pub async fn send_events(&self, events: &[Value]) -> PostOutcome {
        self.send_raw(serde_json::to_vec(events).expect("events serialize"), &[]).await
    }

    /// POSTs `body` as is, with extra `headers`, retrying 5xx and transport errors.
    pub async fn send_raw(&self, body: Vec<u8>, headers: &[(&str, &str)]) -> PostOutcome {
        for attempt in 1..=self.max_attempts {
            let mut req = self.client.post(&self.url).header("content-type", "application/json").body(body.clone());
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => return PostOutcome::Acked { attempts: attempt },
                Ok(r) if r.status().is_client_error() => return PostOutcome::Refused(r.status().as_u16()),
                _ => tokio::time::sleep(self.retry_pause).await,
            }
        }
        PostOutcome::GaveUp
    }
}
