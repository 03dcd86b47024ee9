//! Simulated accounts for `pipe demo`: one per vendor, started on a free loopback port, with
//! the values the `${PIPE_DEMO_*}` variables of that vendor's demo pipeline
//! (`pipelines/<vendor>-demo.toml`) take.

use std::io::Write as _;
use std::sync::Arc;

use crate::aimylogic::AimylogicSim;
use crate::alli::AlliSim;
use crate::giosg::{GiosgSim, SimOptions};

/// The vendors `pipe demo` knows, in the order it runs them.
pub const VENDORS: &[&str] = &["giosg", "alli", "aimylogic"];

/// A running simulated account. Its temporary files (a private key, a client id list) live as
/// long as it does.
pub struct DemoAccount {
    /// One line saying what is simulated and where, e.g. `giosg simulator on http://… with 300
    /// chats (6123 messages)`.
    pub description: String,
    /// The demo pipeline's variables (`PIPE_DEMO_GIOSG_URL`, …) and their values. The output
    /// directory (`PIPE_DEMO_OUT`) is the caller's.
    pub vars: Vec<(&'static str, String)>,
    server: Server,
    _files: Vec<tempfile::NamedTempFile>,
}

enum Server {
    Giosg(GiosgSim),
    Alli(AlliSim),
    Aimylogic(AimylogicSim),
}

impl DemoAccount {
    /// Starts the simulated account of `vendor` (one of [`VENDORS`]) holding `size`
    /// conversations. Errors: an unknown vendor (`InvalidInput`), no loopback port, no
    /// writable temporary directory.
    pub async fn start(vendor: &str, size: usize) -> std::io::Result<DemoAccount> {
        match vendor {
            "giosg" => giosg(size).await,
            "alli" => alli(size).await,
            "aimylogic" => aimylogic(size).await,
            other => {
                Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("no demo account for `{other}`")))
            }
        }
    }

    /// Requests the simulator has answered so far.
    pub fn requests(&self) -> u64 {
        match &self.server {
            Server::Giosg(s) => s.requests(),
            Server::Alli(s) => s.requests(),
            Server::Aimylogic(s) => s.requests(),
        }
    }

    /// Stops the simulator and removes its temporary files.
    pub async fn shutdown(self) {
        match self.server {
            Server::Giosg(s) => s.shutdown().await,
            Server::Alli(s) => s.shutdown().await,
            Server::Aimylogic(s) => s.shutdown().await,
        }
    }
}

/// A private temporary file (mode 0600) holding `text`, removed when dropped.
fn temp_file(prefix: &str, text: &str) -> std::io::Result<tempfile::NamedTempFile> {
    let mut f = tempfile::Builder::new().prefix(prefix).tempfile()?;
    f.write_all(text.as_bytes())?;
    f.flush()?;
    Ok(f)
}

/// giosg: every 5th chat encrypted; the simulator's private key is handed over in a private
/// temporary file, as a real key would be. Without encrypted chats (a tiny account) any key
/// will do: it is never used.
async fn giosg(chats: usize) -> std::io::Result<DemoAccount> {
    // A large account's chats are closer together, so they still lie in the past.
    let config = crate::giosg::SimConfig { chats, ..crate::giosg::SimConfig::demo() }.spread_within_days(270);
    let dataset = Arc::new(crate::giosg::generate(&config));
    let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await?;
    let pem = match dataset.private_key_pkcs8_pem.as_str() {
        "" => crate::giosg::crypto::unrelated_private_key_pem(),
        pem => pem.to_string(),
    };
    let key = temp_file("pipe-demo-key-", &pem)?;
    Ok(DemoAccount {
        description: format!(
            "giosg simulator on {} with {} chats ({} messages)",
            sim.base_url(),
            dataset.chats.len(),
            dataset.message_count()
        ),
        vars: vec![
            ("PIPE_DEMO_GIOSG_URL", sim.base_url()),
            ("PIPE_DEMO_GIOSG_ORG", dataset.organization_id.clone()),
            ("PIPE_DEMO_GIOSG_TOKEN", dataset.token.clone()),
            ("PIPE_DEMO_GIOSG_PRIVATE_KEY_FILE", key.path().display().to_string()),
        ],
        server: Server::Giosg(sim),
        _files: vec![key],
    })
}

/// Alli: REST webapi v2 and GraphQL on one port; the demo pipeline reads REST.
async fn alli(conversations: usize) -> std::io::Result<DemoAccount> {
    let dataset = crate::alli::generate(&crate::alli::SimConfig { conversations, ..crate::alli::SimConfig::demo() });
    let (convs, chats, api_key) = (dataset.conversations.len(), dataset.chat_count(), dataset.api_key.clone());
    let sim = AlliSim::start(dataset).await?;
    Ok(DemoAccount {
        description: format!(
            "Alli simulator on {} with {convs} conversations ({chats} chats), REST webapi v2 and GraphQL",
            sim.base_url()
        ),
        vars: vec![("PIPE_DEMO_ALLI_URL", sim.base_url()), ("PIPE_DEMO_ALLI_API_KEY", api_key)],
        server: Server::Alli(sim),
        _files: Vec::new(),
    })
}

/// Aimylogic: the client ids reach the pipeline through a `client_ids_file`, as they would in
/// production (the Chat API cannot list clients).
async fn aimylogic(clients: usize) -> std::io::Result<DemoAccount> {
    let dataset = Arc::new(crate::aimylogic::generate(&crate::aimylogic::SimConfig::demo(clients)));
    let sim = AimylogicSim::start(dataset.clone()).await?;
    let ids: String = dataset.clients.iter().map(|c| format!("{}\n", c.id)).collect();
    let ids_file = temp_file("pipe-demo-clients-", &ids)?;
    Ok(DemoAccount {
        description: format!(
            "aimylogic simulator on {} with {} clients ({} messages)",
            sim.base_url(),
            dataset.clients.len(),
            dataset.expected().len()
        ),
        vars: vec![
            ("PIPE_DEMO_AIMYLOGIC_URL", sim.base_url()),
            ("PIPE_DEMO_AIMYLOGIC_TOKEN", dataset.token.clone()),
            ("PIPE_DEMO_AIMYLOGIC_CLIENTS", ids_file.path().display().to_string()),
        ],
        server: Server::Aimylogic(sim),
        _files: vec![ids_file],
    })
}
