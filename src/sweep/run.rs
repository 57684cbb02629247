//! One sweep run of one account: take the lease, read the chains, find deletions, advance
//! the watermarks.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::task::JoinSet;

use super::plan::{self, Mode};
use super::progress::Progress;
use super::settings::SweepSettings;
use crate::db::changes::{ChangeSet, Source};
use crate::db::records::{self, WriteError};
use crate::db::sweeps::{self, Chain, ChainPlan, ChainStatus};
use crate::db::{Database, DbError};
use crate::greenhouse::Resource;
use crate::greenhouse::harvest::{Comparison, HarvestClient, HarvestError, ListFilters, RawRecord};

/// Error that kept a run from starting or stopped it.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("account {0} is already being swept; wait for that run to finish")]
    Busy(i64),
    #[error("account {0} not found, disabled, or without Harvest credentials; add them with `accounts add --client-id ... --client-secret ...`")]
    NoCredentials(i64),
    #[error("the run was interrupted and can be resumed")]
    Interrupted,
    #[error(transparent)]
    Harvest(#[from] HarvestError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("storing a page failed: {0}")]
    Write(#[from] WriteError),
}

impl From<diesel::result::Error> for SweepError {
    fn from(error: diesel::result::Error) -> SweepError {
        SweepError::Db(DbError::from(error))
    }
}

/// Report of how a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub account_id: i64,
    pub mode: Mode,
    /// `completed`, `failed` or `interrupted` (resumable).
    pub status: String,
    pub pages: u64,
    pub records: u64,
    pub deleted: usize,
    /// Resources skipped (403) or left without deletions because they came back empty.
    pub notes: Vec<String>,
    pub error: Option<String>,
}

/// State of one run, shared by its chain workers.
struct RunContext {
    db: Database,
    client: HarvestClient,
    settings: SweepSettings,
    account_id: i64,
    run_id: i64,
    mode: Mode,
    started_at: DateTime<Utc>,
    progress: Arc<Progress>,
}

/// Runs a sweep of the client's account to its end, resuming the account's unfinished run
/// if there is one (whatever `mode` requests). `owner` names this process in the lease.
pub async fn run(
    db: &Database,
    client: &HarvestClient,
    settings: &SweepSettings,
    owner: &str,
    mode: Mode,
    progress: Arc<Progress>,
) -> Result<RunReport, SweepError> {
    prepare(db, client, settings, owner, mode, progress).await?.execute().await
}

/// A run that holds the account's lease and has its first chains stored.
pub struct PreparedRun {
    context: Arc<RunContext>,
    owner: String,
}

/// Takes the account's lease and creates the run (or picks up the unfinished one), so that
/// its id is known before the pages are read.
pub async fn prepare(
    db: &Database,
    client: &HarvestClient,
    settings: &SweepSettings,
    owner: &str,
    mode: Mode,
    progress: Arc<Progress>,
) -> Result<PreparedRun, SweepError> {
    let account_id = client.account_id();
    take_lease(db, settings, account_id, owner, None).await?;

    let begun = begin_run(db, settings, account_id, mode).await;
    let (run_id, mode, started_at) = match begun {
        Ok(begun) => begun,
        Err(error) => {
            release_lease(db, account_id, owner).await;
            return Err(error);
        }
    };
    progress.run_id.store(run_id as u64, std::sync::atomic::Ordering::Relaxed);

    let context = Arc::new(RunContext {
        db: db.clone(),
        client: client.clone(),
        settings: settings.clone(),
        account_id,
        run_id,
        mode,
        started_at,
        progress,
    });
    Ok(PreparedRun { context, owner: owner.to_string() })
}

impl PreparedRun {
    pub fn run_id(&self) -> i64 {
        self.context.run_id
    }

    pub fn mode(&self) -> Mode {
        self.context.mode
    }

    /// Reads the chains, concludes the run and gives the lease back.
    pub async fn execute(self) -> Result<RunReport, SweepError> {
        let context = self.context;
        tracing::info!(account.id = context.account_id, run.id = context.run_id, mode = context.mode.as_str(), "sweep started");

        let (stop, stopped) = tokio::sync::oneshot::channel();
        let heartbeat = tokio::spawn(keep_lease(context.clone(), self.owner.clone(), stopped));
        let outcome = read_all_chains(&context).await;
        // Aborting the heartbeat would not stop a renewal already running on a blocking
        // thread, which could then take the lease again after the release below. So the
        // heartbeat gets a stop signal and is awaited.
        let _ = stop.send(());
        let _ = heartbeat.await;

        let report = conclude(&context, outcome).await;
        release_lease(&context.db, context.account_id, &self.owner).await;
        report
    }
}

async fn take_lease(
    db: &Database,
    settings: &SweepSettings,
    account_id: i64,
    owner: &str,
    run_id: Option<i64>,
) -> Result<(), SweepError> {
    let owner = owner.to_string();
    let lease = chrono::Duration::from_std(settings.lease).unwrap_or(chrono::Duration::seconds(60));
    let acquired = db
        .run(move |conn| {
            let now = Utc::now();
            sweeps::acquire_lease(conn, account_id, &owner, run_id, now + lease, now).map_err(DbError::from)
        })
        .await?;
    if acquired { Ok(()) } else { Err(SweepError::Busy(account_id)) }
}

async fn release_lease(db: &Database, account_id: i64, owner: &str) {
    let owner = owner.to_string();
    let released = db.run(move |conn| sweeps::release_lease(conn, account_id, &owner).map_err(DbError::from)).await;
    if let Err(error) = released {
        // The lease expires by itself, so another process can take over later.
        tracing::warn!(account.id = account_id, error = %error, "could not release the sweep lease");
    }
}

/// Renews the lease while the run goes on. Losing it means another process took the
/// account over, so the run stops at the next page. A renewal that fails for another reason
/// (a locked or busy database) is tried again at the next period, because a third of the
/// lease is left. A second failure in a row stops the run before the lease can expire.
/// It returns between renewals once `stopped` fires.
async fn keep_lease(context: Arc<RunContext>, owner: String, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let period = context.settings.lease / 3;
    let mut failed_before = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = &mut stopped => return,
        }
        let renewed = take_lease(&context.db, &context.settings, context.account_id, &owner, Some(context.run_id)).await;
        match renewed {
            Ok(()) => failed_before = false,
            Err(error @ SweepError::Busy(_)) => {
                tracing::warn!(account.id = context.account_id, run.id = context.run_id, error = %error, "sweep lease taken by another process; stopping the run");
                context.progress.cancel();
                return;
            }
            Err(error) if !failed_before => {
                tracing::warn!(account.id = context.account_id, run.id = context.run_id, error = %error, "sweep lease renewal failed; retrying");
                failed_before = true;
            }
            Err(error) => {
                tracing::warn!(account.id = context.account_id, run.id = context.run_id, error = %error, "sweep lease renewal failed twice; stopping the run");
                context.progress.cancel();
                return;
            }
        }
    }
}

/// Resumes the account's unfinished run or creates one with its first chains.
async fn begin_run(
    db: &Database,
    settings: &SweepSettings,
    account_id: i64,
    mode: Mode,
) -> Result<(i64, Mode, DateTime<Utc>), SweepError> {
    let overlap = chrono::Duration::from_std(settings.overlap).unwrap_or(chrono::Duration::hours(1));
    let begun = db
        .run(move |conn| {
            if let Some(run) = sweeps::find_unfinished_run(conn, account_id)? {
                let mode = if run.mode == "full" { Mode::Full } else { Mode::Incremental };
                let started_at = run.started_at.unwrap_or_else(Utc::now);
                tracing::info!(account.id = account_id, run.id = run.id, "resuming unfinished sweep");
                return Ok::<_, DbError>((run.id, mode, started_at));
            }

            let now = Utc::now();
            conn.write_transaction(|conn| {
                let run_id = sweeps::create_run(conn, account_id, mode.as_str(), now)?;
                let chains = match mode {
                    Mode::Full => plan::full_small_chains(),
                    Mode::Incremental => plan::incremental_chains(&watermarks(conn, account_id)?, overlap, now),
                };
                sweeps::add_chains(conn, run_id, &chains)?;
                Ok::<_, DbError>((run_id, mode, now))
            })
        })
        .await?;
    Ok(begun)
}

fn watermarks(conn: &mut crate::db::DbConnection, account_id: i64) -> Result<HashMap<Resource, DateTime<Utc>>, DbError> {
    let states = sweeps::sync_states(conn, account_id)?;
    Ok(states
        .into_iter()
        .filter_map(|state| Some((state.resource.parse::<Resource>().ok()?, state.watermark?)))
        .collect())
}

/// Reads every pending chain. A full run plans its large resources once the small ones are
/// stored, because their slices are cut along the account's history, which the jobs show.
async fn read_all_chains(context: &Arc<RunContext>) -> Result<(), SweepError> {
    loop {
        let chains = load_chains(context).await?;
        let pending: Vec<Chain> = chains.iter().filter(|c| c.status == ChainStatus::Pending).cloned().collect();
        if !pending.is_empty() {
            run_chains(context, pending).await?;
            continue;
        }

        let planned_large = chains.iter().any(|c| plan::is_large(c.plan.resource));
        let any_failed = chains.iter().any(|c| c.status == ChainStatus::Failed);
        if context.mode == Mode::Full && !planned_large && !any_failed {
            plan_large_chains(context, chains.len()).await?;
            continue;
        }
        return Ok(());
    }
}

async fn load_chains(context: &RunContext) -> Result<Vec<Chain>, SweepError> {
    let run_id = context.run_id;
    Ok(context.db.run(move |conn| sweeps::load_chains(conn, run_id).map_err(DbError::from)).await?)
}

async fn plan_large_chains(context: &RunContext, first_position: usize) -> Result<(), SweepError> {
    let (account_id, run_id, slices) = (context.account_id, context.run_id, context.settings.slices);
    let now = Utc::now();
    context
        .db
        .run(move |conn| {
            let history_start = sweeps::earliest_job(conn, account_id)?;
            let mut edges = HashMap::new();
            for resource in plan::ORDER.into_iter().filter(|r| plan::is_large(*r)) {
                let mut resource_edges = sweeps::created_at_quantiles(conn, account_id, resource, slices, 1000)?;
                if resource_edges.is_empty()
                    && let Some(start) = history_start
                {
                    resource_edges = plan::even_edges(slices, start, now);
                }
                edges.insert(resource, resource_edges);
            }
            let chains = plan::full_large_chains(slices, |resource| edges.get(&resource).cloned().unwrap_or_default());
            conn.write_transaction(|conn| add_chains_at(conn, run_id, first_position, &chains))
        })
        .await?;
    Ok(())
}

fn add_chains_at(conn: &mut crate::db::DbConnection, run_id: i64, first: usize, chains: &[ChainPlan]) -> Result<(), DbError> {
    sweeps::add_chains_from(conn, run_id, first, chains)?;
    Ok(())
}

/// Runs chains with at most `pages_in_flight` at once. The first error other than a 403
/// stops the other chains at their next page and is returned.
async fn run_chains(context: &Arc<RunContext>, chains: Vec<Chain>) -> Result<(), SweepError> {
    let workers = context.settings.pages_in_flight.max(1).min(chains.len());
    let queue = Arc::new(Mutex::new(VecDeque::from(chains)));
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        tasks.spawn(chain_worker(context.clone(), queue.clone()));
    }

    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.unwrap_or_else(|e| Err(SweepError::Db(DbError::Task(e.to_string()))));
        if let Err(error) = outcome {
            context.progress.cancel();
            first_error.get_or_insert(error);
        }
    }
    match first_error {
        Some(error) => Err(error),
        None if context.progress.is_cancelled() => Err(SweepError::Interrupted),
        None => Ok(()),
    }
}

async fn chain_worker(context: Arc<RunContext>, queue: Arc<Mutex<VecDeque<Chain>>>) -> Result<(), SweepError> {
    loop {
        if context.progress.is_cancelled() {
            return Ok(());
        }
        let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
        let Some(chain) = next else {
            return Ok(());
        };

        match read_chain(&context, &chain).await {
            Ok(()) => {}
            Err(SweepError::Harvest(error)) if error.is_forbidden() => {
                tracing::warn!(account.id = context.account_id, run.id = context.run_id, resource = %chain.plan.resource, "Harvest responded with 403; resource skipped");
                set_status(&context, chain.position, ChainStatus::Skipped, Some(describe(&error))).await?;
            }
            Err(SweepError::Interrupted) => return Ok(()),
            Err(error) => {
                tracing::error!(account.id = context.account_id, run.id = context.run_id, resource = %chain.plan.resource, error = %error, "sweep chain failed");
                set_status(&context, chain.position, ChainStatus::Failed, Some(describe(&error))).await?;
                return Err(error);
            }
        }
    }
}

async fn set_status(context: &RunContext, position: i32, status: ChainStatus, error: Option<String>) -> Result<(), SweepError> {
    let run_id = context.run_id;
    context
        .db
        .run(move |conn| sweeps::set_chain_status(conn, run_id, position, status, error.as_deref()).map_err(DbError::from))
        .await?;
    Ok(())
}

fn first_request_filters(plan: &ChainPlan, per_page: u32) -> ListFilters {
    let mut filters = ListFilters::new().per_page(per_page);
    if let Some(from) = plan.created_from {
        filters = filters.created_at(Comparison::Gte, from);
    }
    if let Some(before) = plan.created_before {
        filters = filters.created_at(Comparison::Lt, before);
    }
    if let Some(from) = plan.updated_from {
        filters = filters.updated_at(Comparison::Gte, from);
    }
    if let Some(to) = plan.updated_to {
        filters = filters.updated_at(Comparison::Lte, ceil_to_second(to));
    }
    filters
}

/// Rounds up to a whole second. Filters are sent with whole seconds, so an upper bound cut
/// down would leave out records updated in the last fraction of a second before the run.
fn ceil_to_second(time: DateTime<Utc>) -> DateTime<Utc> {
    let fraction = chrono::Duration::nanoseconds(time.timestamp_subsec_nanos().into());
    if fraction.is_zero() { time } else { time - fraction + chrono::Duration::seconds(1) }
}

/// Reads one chain from its checkpoint to its last page, storing and checkpointing each
/// page in one transaction.
async fn read_chain(context: &Arc<RunContext>, chain: &Chain) -> Result<(), SweepError> {
    let resource = chain.plan.resource;
    let mut pager = match &chain.next_url {
        Some(next_url) => context.client.resume(resource.name(), next_url)?,
        None => context.client.list(resource.name(), &first_request_filters(&chain.plan, context.settings.per_page))?,
    };

    loop {
        if context.progress.is_cancelled() {
            return Err(SweepError::Interrupted);
        }
        let Some(page) = pager.next_page().await? else {
            return Ok(());
        };
        let is_last = page.next.is_none();
        let count = page.records.len();
        store_page(context, chain.position, resource, page.records, page.next).await?;
        context.progress.add_page(count);
        crate::metrics::sweep_page_stored(context.account_id, resource, count);
        if is_last {
            return Ok(());
        }
    }
}

async fn store_page(
    context: &RunContext,
    position: i32,
    resource: Resource,
    records: Vec<RawRecord>,
    next: Option<String>,
) -> Result<(), SweepError> {
    let records = Arc::new(records);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store_page_once(context, position, resource, records.clone(), next.clone()).await {
            // A burst of webhooks can hold every pooled connection for longer than the pool's
            // acquire timeout. The page is still in hand, so waiting and trying again is
            // better than failing a run that would then start over.
            Err(SweepError::Db(DbError::Unavailable(error))) if attempt < STORE_ATTEMPTS => {
                let wait = std::time::Duration::from_secs(1 << (attempt - 1));
                tracing::warn!(
                    account.id = context.account_id,
                    run.id = context.run_id,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    error = %error,
                    "no database connection for a sweep page; retrying"
                );
                tokio::time::sleep(wait).await;
            }
            outcome => return outcome,
        }
    }
}

/// Attempts at storing one page while the database has no free connection: waits of 1, 2, 4
/// and 8 seconds between them.
const STORE_ATTEMPTS: u32 = 5;

async fn store_page_once(
    context: &RunContext,
    position: i32,
    resource: Resource,
    records: Arc<Vec<RawRecord>>,
    next: Option<String>,
) -> Result<(), SweepError> {
    let (account_id, run_id) = (context.account_id, context.run_id);
    let seen_by_run = (context.mode == Mode::Full).then_some(run_id);
    context
        .db
        .run(move |conn| {
            let stored = conn.write_transaction(|conn| {
                let now = Utc::now();
                let mut changes = ChangeSet::new(account_id, Source::Sweep);
                records::upsert_v3_records(conn, account_id, resource, &records, seen_by_run, &mut changes, now)?;
                sweeps::checkpoint_page(conn, run_id, position, next.as_deref(), records.len())?;
                changes.append(conn, now)?;
                Ok::<_, SweepError>(())
            });
            crate::changes::publish_pending();
            stored
        })
        .await
}

/// Formats an error with its sources, so that a stored run error names the cause: "still
/// failed after 6 attempts: Harvest responded with server error 502", not only the first half.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl From<SweepError> for DbError {
    fn from(error: SweepError) -> DbError {
        match error {
            SweepError::Db(error) => error,
            other => DbError::Task(other.to_string()),
        }
    }
}

/// Finishes the run: deletions and watermarks when it completed, the error when it failed,
/// nothing when it was interrupted (it stays resumable).
async fn conclude(context: &Arc<RunContext>, outcome: Result<(), SweepError>) -> Result<RunReport, SweepError> {
    let chains = load_chains(context).await?;
    let mut report = RunReport {
        run_id: context.run_id,
        account_id: context.account_id,
        mode: context.mode,
        status: "completed".to_string(),
        pages: chains.iter().map(|c| c.pages as u64).sum(),
        records: chains.iter().map(|c| c.records as u64).sum(),
        deleted: 0,
        notes: Vec::new(),
        error: None,
    };

    match outcome {
        Err(SweepError::Interrupted) => {
            report.status = "interrupted".to_string();
            tracing::info!(account.id = context.account_id, run.id = context.run_id, "sweep interrupted; it resumes at the next start");
            crate::metrics::sweep_finished(context.account_id, context.mode.as_str(), &report.status, 0, (Utc::now() - context.started_at).to_std().unwrap_or_default());
            return Ok(report);
        }
        Err(error) => {
            report.status = "failed".to_string();
            report.error = Some(describe(&error));
        }
        Ok(()) => {
            let (deleted, notes) = finish_resources(context, &chains).await?;
            report.deleted = deleted;
            report.notes = notes;
        }
    }

    let (run_id, status, deleted, notes, error) =
        (context.run_id, report.status.clone(), report.deleted, report.notes.clone(), report.error.clone());
    context
        .db
        .run(move |conn| sweeps::finish_run(conn, run_id, &status, deleted, &notes, error.as_deref(), Utc::now()).map_err(DbError::from))
        .await?;
    tracing::info!(
        account.id = context.account_id,
        run.id = context.run_id,
        status = %report.status,
        pages = report.pages,
        records = report.records,
        deleted = report.deleted,
        "sweep finished"
    );
    crate::metrics::sweep_finished(context.account_id, context.mode.as_str(), &report.status, report.deleted, (Utc::now() - context.started_at).to_std().unwrap_or_default());
    crate::allocator::release_free_memory();
    Ok(report)
}

/// Per resource of a completed run: marks unseen rows deleted (full runs) and advances the
/// watermark. Skipped resources and suspiciously empty ones are left alone and noted.
async fn finish_resources(context: &Arc<RunContext>, chains: &[Chain]) -> Result<(usize, Vec<String>), SweepError> {
    let (account_id, run_id, started_at, full) =
        (context.account_id, context.run_id, context.started_at, context.mode == Mode::Full);
    let mut per_resource: HashMap<Resource, (bool, i64)> = HashMap::new();
    for chain in chains {
        let entry = per_resource.entry(chain.plan.resource).or_insert((false, 0));
        entry.0 |= chain.status != ChainStatus::Done;
        entry.1 += chain.records;
    }

    context
        .db
        .run(move |conn| {
            let mut deleted = 0;
            let mut notes = Vec::new();
            let now = Utc::now();
            for resource in plan::ORDER {
                let Some(&(incomplete, seen)) = per_resource.get(&resource) else { continue };
                if incomplete {
                    notes.push(format!("{resource}: skipped (Harvest responded with 403); nothing deleted"));
                    continue;
                }
                if full {
                    if seen == 0 && sweeps::count_live(conn, account_id, resource)? > 0 {
                        notes.push(format!("{resource}: Harvest returned no records but rows are stored; nothing deleted"));
                        tracing::warn!(account.id = account_id, run.id = run_id, resource = %resource, "Harvest returned no records for a resource with stored rows; deletions skipped");
                    } else {
                        deleted += sweeps::mark_unseen_deleted(conn, account_id, resource, run_id, started_at, now)?;
                    }
                }
                sweeps::advance_watermark(conn, account_id, resource, run_id, started_at, full, now)?;
            }
            Ok::<_, DbError>((deleted, notes))
        })
        .await
        .map_err(SweepError::from)
}
