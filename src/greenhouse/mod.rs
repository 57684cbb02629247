//! Greenhouse's own formats: record types, webhook payload shapes and the Harvest v3 client.

pub mod harvest;
pub mod resource;
pub mod webhook_payload;

pub use resource::Resource;
