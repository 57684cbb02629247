//! Live progress of a run, shared by its chains, the command line and the admin API.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Counters of one run in this process.
#[derive(Debug)]
pub struct Progress {
    pub run_id: AtomicU64,
    pages: AtomicU64,
    records: AtomicU64,
    started: Instant,
    cancelled: AtomicBool,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            run_id: AtomicU64::new(0),
            pages: AtomicU64::new(0),
            records: AtomicU64::new(0),
            started: Instant::now(),
            cancelled: AtomicBool::new(false),
        }
    }
}

impl Progress {
    pub fn add_page(&self, records: usize) {
        self.pages.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(records as u64, Ordering::Relaxed);
    }

    pub fn pages(&self) -> u64 {
        self.pages.load(Ordering::Relaxed)
    }

    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Records stored per second since the run started in this process.
    pub fn records_per_second(&self) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        if seconds > 0.0 { self.records() as f64 / seconds } else { 0.0 }
    }

    /// Asks the run to stop at the next page boundary. The run stays resumable.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}
