//! The source kit: what every HTTP source of chat conversations is built from, so a new vendor
//! is a config, a client, a mapping and a crawl function.
//!
//! * [`http_settings`]: the HTTP keys every HTTP source embeds flat in its `[source]` table
//!   (`base_url`, `concurrency`, `requests_per_second`, `retry_budget`, `ca_file`), with
//!   per-vendor defaults, turned into the [`crate::http::HttpClient`] settings.
//! * [`crawl`]: the crawl driver: the crawl task, the bounded event channel, abort on drop,
//!   messages before their conversation, the checkpoint cadence and the retry-budget ending.
//! * [`watermark`]: the incremental watermark cursor of a newest-first listing (lookback,
//!   resumable scans, state bounded by the lookback window).
//!
//! A source's crate then reads: `config.rs` (its keys, `#[serde(flatten)] http:
//! HttpConfig<VendorHttp>`), `client.rs` (requests and paging over [`crate::http`] and
//! [`crate::paging`]), `mapping.rs` (vendor JSON → canonical rows, [`crate::schema`]) and
//! `crawl.rs` (a [`Crawl`] run by [`CrawlSource::spawn`]).

pub mod crawl;
pub mod http_settings;
pub mod watermark;

pub use crawl::{
    BATCH_CONVERSATIONS, BATCH_MESSAGES, Crawl, CrawlSource, CrawlSpec, Emitter, cut_conversation,
    cut_listed_conversation,
};
pub use http_settings::{HttpConfig, HttpDefaults};
pub use watermark::{MAX_CLOCK_SKEW_US, Mark, Scan, SeenEntry, SeenMark, WatermarkCursor, load_state};
