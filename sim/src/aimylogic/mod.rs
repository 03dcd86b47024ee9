//! Aimylogic Chat API simulator: a deterministic synthetic channel ([`generate`]), an HTTP
//! server ([`AimylogicSim`]) answering `GET /chatapi/{token}/client/{clientId}/history` the
//! way docs/vendors/aimylogic.md §2.5 assumes (`from`/`to`/`limit`/`offset`, `{clientId,
//! messages}`), webhook events of §2.3 ([`webhook_events`]) and a webhook sender that retries
//! until acknowledged ([`WebhookSender`]).
//!
//! The dataset is the ground truth: every history item exactly as served, and the messages a
//! correct export must hold ([`Expected`]), derived from the generator's own choices rather
//! than from the plugin's mapping. It makes clients hard on purpose: ids with spaces, `/`,
//! `:`, `@` and Cyrillic; event requests; agent replies; several reply types (text, buttons,
//! image, carousel, and one unknown type); widget-state items with neither request nor reply;
//! several bot sessions per client; two items with the same timestamp.

mod generate;
mod sender;
mod server;

pub use generate::{Client, Dataset, Expected, SimConfig, generate, webhook_events};
pub use sender::{PostOutcome, WebhookSender};
pub use server::AimylogicSim;
