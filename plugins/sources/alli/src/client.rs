//! Alli's two API surfaces behind one client: the REST webapi v2 ([`rest`]) and the GraphQL
//! agent API ([`graphql`]). Both list conversations newest last chat first and complete each
//! one into a [`Bundle`] with every chat.

pub mod graphql;
pub mod rest;

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

    /// The conversation listing, newest last chat first, one `Vec` per page. `started_at`
    /// (REST only) is the "last chat time after" filter, in the API's own unit.
    pub fn listing(&self, started_at: Option<i64>) -> BoxStream<'static, Result<Vec<Value>>> {
        match self {
            Client::Rest(c) => c.listing(started_at),
            Client::Graphql(c) => c.listing(),
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
