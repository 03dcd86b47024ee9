//! Alli's two API surfaces behind one client: the REST webapi v2 ([`rest`]) and the GraphQL
//! agent API ([`graphql`]). Both list conversations newest last chat first and complete each
//! one into a [`Bundle`] with every chat.

pub mod graphql;
pub mod rest;
pub mod schema;

use std::sync::Arc;

use futures::stream::BoxStream;
use pipe_plugin_sdk::{Metrics, Result};
use serde_json::Value;

use crate::mapping::Bundle;
use crate::{AlliConfig, Api};

/// One API or the other, as `api` says.
#[derive(Clone)]
pub enum Client {
    /// `api = "rest"`.
    Rest(rest::RestClient),
    /// `api = "graphql"`.
    Graphql(graphql::GraphqlClient),
}

impl Client {
    /// The client of the configured API (GraphQL logs in here, unless a `token` is given).
    ///
    /// Errors: [`pipe_plugin_sdk::PluginError::Config`] for a key that cannot be sent, an
    /// unreadable `ca_file` or a bad `requests_per_second`; `Auth` for a refused login.
    pub async fn connect(cfg: &AlliConfig, metrics: Arc<Metrics>) -> Result<Self> {
        Ok(match cfg.api {
            Api::Rest => Client::Rest(rest::RestClient::new(cfg, metrics)?),
            Api::Graphql => Client::Graphql(graphql::GraphqlClient::connect(cfg, metrics).await?),
        })
    }

    /// The conversation listing, one `Vec` per page, newest last chat first when
    /// [`Self::ordered`]. No time filter is sent: REST's `startedAt` unit is not documented
    /// (alli.md §1), so the incremental scan stops client-side.
    pub fn listing(&self) -> BoxStream<'static, Result<Vec<Value>>> {
        match self {
            Client::Rest(c) => c.listing(None),
            Client::Graphql(c) => c.listing(),
        }
    }

    /// Whether the listing is sorted newest last chat first: REST's documented default order
    /// (alli.md §2.1); GraphQL when the server has `order: LAST_CHAT_TIME_DESC`.
    pub fn ordered(&self) -> bool {
        match self {
            Client::Rest(_) => true,
            Client::Graphql(c) => c.ordered(),
        }
    }

    /// A listed conversation's last chat time (µs) for the incremental scan, if known.
    pub fn listing_time(&self, conversation: &Value) -> Option<i64> {
        match self {
            Client::Rest(_) => crate::mapping::listing_time(conversation),
            Client::Graphql(c) => c.listing_time(conversation),
        }
    }

    /// A listed conversation with every one of its chats.
    pub async fn bundle(&self, conversation: Value) -> Result<Bundle> {
        match self {
            Client::Rest(c) => c.bundle(conversation).await,
            Client::Graphql(c) => c.bundle(conversation).await,
        }
    }
}
