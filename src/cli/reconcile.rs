//! `greenhouse-sync reconcile`: one sweep in the foreground, with a progress bar.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::sync_args::{HarvestArgs, SweepArgs};
use super::{DatabaseArgs, open_migrated};
use crate::sweep::{Mode, Progress, SweepService};

#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// Account to sweep.
    #[arg(long, env = "GREENHOUSE_SYNC_ACCOUNT")]
    pub account: i64,

    /// Read every record and mark those Greenhouse no longer returns as deleted; without it,
    /// read records updated since the last sweep.
    #[arg(long, env = "GREENHOUSE_SYNC_FULL")]
    pub full: bool,

    #[command(flatten)]
    pub harvest: HarvestArgs,

    #[command(flatten)]
    pub sweep: SweepArgs,
}

/// Runs the sweep and prints its report as JSON. Fails unless the run completed.
pub fn run(database: &DatabaseArgs, args: &ReconcileArgs) -> anyhow::Result<()> {
    let db = open_migrated(database)?;
    let runtime = tokio::runtime::Runtime::new().context("could not start the async runtime")?;
    let mode = if args.full { Mode::Full } else { Mode::Incremental };

    let report = runtime.block_on(async {
        let service = SweepService::new(db, args.harvest.settings(), args.sweep.settings())?;
        let client = service.client(args.account).await?;
        let progress = Arc::new(Progress::default());
        let bar = progress_bar(progress.clone());
        let owner = format!("reconcile-{}", std::process::id());
        let report = crate::sweep::run(service.database(), &client, service.settings(), &owner, mode, progress).await;
        bar.finish_and_clear();
        report
    })?;

    println!("{}", serde_json::to_string_pretty(&report)?);
    if report.status != "completed" {
        anyhow::bail!("sweep {} of account {} ended {}", report.run_id, report.account_id, report.status);
    }
    Ok(())
}

/// Starts a spinner showing pages and records, since the total is unknown until the last page.
fn progress_bar(progress: Arc<Progress>) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    let shown = bar.clone();
    tokio::spawn(async move {
        loop {
            shown.set_message(format!(
                "{} pages, {} records, {:.0} records/s",
                progress.pages(),
                progress.records(),
                progress.records_per_second()
            ));
            shown.tick();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    bar
}
