//! Webhook intake: signature check, delivery log, applying payloads.

pub mod apply;
pub mod body;
pub mod commit;
pub mod intake;
pub mod signature;
pub mod store;
