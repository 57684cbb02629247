//! The reconciliation sweep: reads Harvest v3 and repairs what webhooks missed, deletions
//! included, in bounded memory and under the account's request budget.
//!
//! v3 has no deleted-records feed, so a record's deletion shows only through a webhook or
//! through a full sweep that no longer returns it.

pub mod plan;
pub mod progress;
pub mod refresh;
pub mod run;
pub mod service;
pub mod settings;

pub use plan::Mode;
pub use progress::Progress;
pub use run::{PreparedRun, RunReport, SweepError, prepare, run};
pub use service::SweepService;
pub use settings::SweepSettings;
