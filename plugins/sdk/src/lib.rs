//! # pipe-plugin-sdk
//!
//! Everything a `pipe` plugin is written against, whether it is linked into the `pipe` binary
//! (the built-ins) or shipped as a dynamic library:
//!
//! * [`plugin`]: the [`Source`], [`Transform`] and [`Sink`] traits and the protocol between
//!   them (streams declared at open; [`Event::Batch`] / [`Event::Checkpoint`] / [`Event::End`];
//!   dead letters beside batches; sinks `write`, `commit`, `abort`).
//! * [`schema`]: the canonical `messages` and `conversations` Arrow schemas (v1) and row
//!   builders, so every source fills them the same way.
//! * [`config`]: typed plugin configuration from the JSON the engine hands over, with errors
//!   that carry the key path.
//! * [`http`]: the HTTP client every source shares (timeouts, retries, `Retry-After`, clear
//!   auth errors that never contain a secret).
//! * [`source_kit`]: what HTTP sources are built from: the shared HTTP keys with per-vendor
//!   defaults, the crawl driver (task, bounded channel, checkpoints, retry-budget ending) and
//!   the incremental watermark cursor.
//! * [`time`]: vendor timestamp parsing to microseconds since the Unix epoch, UTC.
//! * [`file_sink`] (feature `file-sink`): the core of the file sinks (`parquet`, `json`):
//!   Hive partitioning, rolling, staging under temporary names, publishing to a local
//!   directory or object storage at commit, abort. A file sink is its encoder plus its config.
//! * [`staging`]: staged output files (temporary names, publish at commit, discard at abort)
//!   and [`staging::run_blocking`]; the file-sink core's `stage` step, usable without it.
//! * [`json_rows`]: rows as JSON objects (RFC 3339 timestamps, maps as objects), as the JSON
//!   sinks write them and dead letters carry them.
//! * [`conformance`]: the conformance kit, the checks `pipe plugin check` runs, callable from
//!   a plugin's own tests on its descriptor.
//! * [`ffi`]: the same traits behind the C ABI, for plugins shipped as dynamic libraries
//!   ([`declare_plugin!`]).

#![warn(missing_docs)]

pub mod config;
pub mod conformance;
pub mod contract;
pub mod error;
pub mod ffi;
#[cfg(feature = "file-sink")]
pub mod file_sink;
pub mod http;
pub mod json_rows;
pub mod metrics;
pub mod paging;
pub mod plugin;
pub mod schema;
pub mod source_kit;
pub mod staging;
#[cfg(feature = "object-store")]
pub mod storage;
pub mod time;

pub use error::{PluginError, Result};
pub use metrics::Metrics;
pub use plugin::{
    Checkpoint, CommitCadence, DeadLetter, DeadLetterKind, Event, PluginDescriptor, PluginFactory, PluginKind,
    REASON_ACCOUNT_FAILED, REASON_CONVERSATION_FORBIDDEN, REASON_CONVERSATION_GONE, REASON_INCOMPLETE,
    REASON_PAGING_LOOP, REASON_RESPONSE_TOO_LARGE, REASON_RETRY_BUDGET, REASON_UNEXPECTED_SHAPE, REJECTED_REASONS,
    Sink, SinkContext, SinkStats, Source, SourceContext, SourceControl, StreamDecl, Transform, TransformContext,
    TransformOutput,
};

/// Re-exports plugin authors need so their Arrow and async-trait versions match the SDK's.
pub mod reexports {
    pub use arrow_array;
    pub use arrow_schema;
    pub use async_trait::async_trait;
    /// The HTTP crate behind [`crate::http`] (header types for [`crate::http::HttpClient::new`]).
    pub use reqwest;
    pub use schemars;
    pub use serde_json;
}
