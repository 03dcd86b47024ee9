//! The `[source]` keys of the giosg source.

use pipe_plugin_sdk::config::Secret;
use pipe_plugin_sdk::source_kit::{HttpConfig, HttpDefaults};
use pipe_plugin_sdk::time::parse_timestamp_micros;
use pipe_plugin_sdk::{PluginError, Result};
use schemars::JsonSchema;
use serde::Deserialize;

/// giosg's HTTP defaults: the public service (`base_url` without `/api/v5`), 4 requests in
/// flight, a retry budget of 200.
#[derive(Debug, Clone, Copy)]
pub struct GiosgHttp;

impl HttpDefaults for GiosgHttp {
    const VENDOR: &'static str = crate::VENDOR;
    const BASE_URL: &'static str = "https://service.giosg.com";
}

/// Configuration of the giosg source (the `[source]` table of a pipeline).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GiosgConfig {
    // `base_url` (the API root without `/api/v5`), `concurrency` / `max_concurrency` (also:
    // chats fetched at the same time), `requests_per_second`, `retry_budget`, `ca_file`; flat in
    // `[source]`.
    #[serde(flatten)]
    pub http: HttpConfig<GiosgHttp>,
    /// The organization whose chats are exported (a UUID; giosg console → Settings → Company).
    pub organization_id: String,
    /// API token (console → Settings → Company → Access tokens), sent as `Authorization: Token
    /// <token>`. Give it as `"${GIOSG_API_TOKEN}"`; it is never printed.
    pub token: Secret,
    /// Items asked per page (giosg may return fewer; max 100). Default 100.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Emit a checkpoint after this many conversations, or sooner once 1 MiB of message text
    /// and raw payloads came since the last one. The engine commits at checkpoints
    /// (Parquet files get their final names, the state is saved), at most once per
    /// `commit_interval_seconds` of the pipeline. Default 200.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u32,
    /// First run only: skip chats created before this time (RFC 3339, e.g.
    /// `2026-01-01T00:00:00Z`). Later runs resume from the saved state.
    #[serde(default)]
    pub start: Option<String>,
    /// Skip chats created at or after this time (RFC 3339). With `start`, a bounded backfill
    /// window: `pipe run --window FROM..TO` sets both and keeps the window's state apart.
    #[serde(default)]
    pub end: Option<String>,
    /// How far below the newest chat of the last run a scan looks again for chats that
    /// changed (hours). Default 48.
    #[serde(default = "default_lookback_hours")]
    pub lookback_hours: u32,
}

fn default_page_size() -> u32 {
    100
}
fn default_checkpoint_every() -> u32 {
    200
}
fn default_lookback_hours() -> u32 {
    48
}

impl GiosgConfig {
    /// The `start`..`end` window of chat creation times, in microseconds UTC, checked when
    /// the source opens (`pipe validate` accepts any string).
    ///
    /// Errors: [`PluginError::Config`] for an empty `organization_id`, a `start` or `end` that
    /// is not RFC 3339, or an `end` not after `start`.
    pub fn window(&self) -> Result<(Option<i64>, Option<i64>)> {
        if self.organization_id.trim().is_empty() {
            return Err(PluginError::Config { path: "organization_id".into(), message: "must not be empty".into() });
        }
        let instant = |key: &str, value: &Option<String>| -> Result<Option<i64>> {
            match value {
                None => Ok(None),
                Some(s) => parse_timestamp_micros(s).map(Some).ok_or_else(|| PluginError::Config {
                    path: key.into(),
                    message: format!("`{s}` is not an RFC 3339 timestamp (e.g. 2026-01-01T00:00:00Z)"),
                }),
            }
        };
        let start_us = instant("start", &self.start)?;
        let end_us = instant("end", &self.end)?;
        if let (Some(s), Some(e)) = (start_us, end_us)
            && e <= s
        {
            return Err(PluginError::Config { path: "end".into(), message: "must be after `start`".into() });
        }
        Ok((start_us, end_us))
    }

    /// `lookback_hours` in microseconds, saturating (any `u32` of hours is accepted: more
    /// than all of history means "look back over everything").
    pub fn lookback_us(&self) -> i64 {
        i64::from(self.lookback_hours).saturating_mul(3_600_000_000)
    }
}
