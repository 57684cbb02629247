//! The webhook side of the simulator: payloads shaped like Greenhouse's and a sender that
//! signs, delivers, retries and impairs them.

pub mod payload;
pub mod sender;

pub use payload::Event;
pub use sender::{WebhookSender, WebhookStats};
