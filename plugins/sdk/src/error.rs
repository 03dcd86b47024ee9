//! The one error type that crosses from a plugin to the engine.

/// An error raised by a plugin. The engine maps [`PluginError::Config`] to exit code 2 and every
/// other variant to exit code 1 (docs/design.md §7). Messages must never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin's configuration is invalid. `path` is the key path inside the plugin's table
    /// (for example `page_size`), empty for the table itself.
    #[error("{path}: {message}")]
    Config {
        /// Key path inside the plugin's table (`page_size`, `rules[2].tag`); empty: the table.
        path: String,
        /// What is wrong, for a person (no secret values).
        message: String,
    },
    /// The vendor refused our credentials (HTTP 401/403). Retrying cannot help.
    #[error("{vendor} rejected the credentials: HTTP {status} on {what}; check the token and its permissions")]
    Auth {
        /// The vendor's name (`giosg`).
        vendor: String,
        /// The HTTP status (401 or 403).
        status: u16,
        /// The request, without secrets (method and path).
        what: String,
    },
    /// A request failed after all retries, or returned something we cannot use.
    #[error("{0}")]
    Http(String),
    /// The source's retry budget (all retries of the run together) is spent: the vendor keeps
    /// failing. A source that can, checkpoints what it has and ends the run `partial`.
    #[error("{vendor}: retry budget exhausted ({message})")]
    RetryBudgetExhausted {
        /// The vendor's name.
        vendor: String,
        /// The last failure.
        message: String,
    },
    /// A listing (or one response of it) cannot be read to its end, and retrying cannot help:
    /// its pages repeat (a `next` URL, cursor or page seen before: reason
    /// [`crate::REASON_PAGING_LOOP`]), or a response body is larger than the source's
    /// `max_response_bytes` (reason [`crate::REASON_RESPONSE_TOO_LARGE`]). The items read before
    /// it are good. A crawl run by [`crate::source_kit::CrawlSource`] commits what is complete
    /// and ends `partial` with a dead letter of that reason; a source that fetches per
    /// conversation dead-letters that conversation instead and goes on with the others.
    #[error("{vendor}: {message}")]
    ListingCut {
        /// The vendor's name.
        vendor: String,
        /// The dead-letter reason: [`crate::REASON_PAGING_LOOP`] or [`crate::REASON_RESPONSE_TOO_LARGE`].
        reason: &'static str,
        /// What was cut and where (the listing's URL path, never a secret).
        message: String,
    },
    /// The vendor answered HTTP 404 or 410: what was asked for does not exist (any more). On a
    /// conversation's own endpoints (deleted between listing and fetching) a crawl makes it that
    /// conversation's dead letter ([`crate::source_kit::cut_conversation`], reason
    /// [`crate::REASON_CONVERSATION_GONE`]); anywhere else it fails the run like any HTTP error.
    #[error("{message}")]
    NotFound {
        /// The vendor's name.
        vendor: String,
        /// `<vendor> answered HTTP 404 for <path>: <start of the body>` (scrubbed).
        message: String,
    },
    /// The vendor returned data that does not have the documented shape.
    #[error("unexpected response from {vendor}: {message}")]
    Protocol {
        /// The vendor's name.
        vendor: String,
        /// What was expected and where (URL path, JSON pointer).
        message: String,
    },
    /// Writing or reading local files failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, usually with the path (`writing out/x.parquet`).
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Anything else, with its explanation.
    #[error("{0}")]
    Other(String),
}

impl PluginError {
    /// Wraps an I/O error with what we were doing (usually including the path).
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        PluginError::Io { context: context.into(), source }
    }
    /// Shorthand for [`PluginError::Other`].
    pub fn other(message: impl std::fmt::Display) -> Self {
        PluginError::Other(message.to_string())
    }
}

impl From<arrow_schema::ArrowError> for PluginError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        PluginError::Other(format!("arrow: {e}"))
    }
}

/// Result with [`PluginError`].
pub type Result<T, E = PluginError> = std::result::Result<T, E>;
