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
//!
//! Strict modes play what a real server may do differently from our notes (issue 17): a history
//! that ignores `offset` ([`AimylogicSim::ignore_offset`]) or `from` too
//! ([`AimylogicSim::ignore_from`]), pages capped below `limit` ([`AimylogicSim::max_page_size`]),
//! zone-less times in Moscow's wall clock ([`AimylogicSim::zone_less_in`]), and items of shapes the
//! mapping does not know ([`Dataset::with_shape_drift`]). Webhook events sometimes carry no `query`,
//! like the help page's own example.

mod generate;
mod sender;
mod server;

pub use generate::{Client, Dataset, Expected, SimConfig, generate, webhook_events};
pub use sender::{PostOutcome, WebhookSender};
pub use server::AimylogicSim;
