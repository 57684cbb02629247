//! Sweeps as a service of the server: one Harvest client per account, runs started in the
//! background, the schedule, and targeted refreshes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;

use super::plan::Mode;
use super::progress::Progress;
use super::refresh;
use super::run::{self, SweepError};
use super::settings::SweepSettings;
use crate::db::{Database, DbError, accounts, sweeps};
use crate::greenhouse::harvest::{Budget, Credentials, HarvestClient, HarvestSettings, build_http_client};

/// Starts, tracks and schedules the sweeps of every account. Cheap to clone.
#[derive(Clone)]
pub struct SweepService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    harvest: HarvestSettings,
    settings: SweepSettings,
    /// Names this process in sweep leases.
    owner: String,
    http: reqwest::Client,
    clients: Mutex<HashMap<i64, CachedClient>>,
    running: Mutex<HashMap<i64, Arc<Progress>>>,
    /// Runtime that runs started sweeps. Without it they run on the caller's runtime,
    /// which for an admin request is an HTTP worker's: the sweep would then compete with
    /// requests and end with that worker.
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

/// A client with the credentials it was built from, so that changed credentials build a new
/// client. The budget is kept across rebuilds: Greenhouse counts per credential, but a fresh
/// budget would forget what it learned.
struct CachedClient {
    client_id: String,
    client: HarvestClient,
}

impl SweepService {
    pub fn new(db: Database, harvest: HarvestSettings, settings: SweepSettings) -> Result<SweepService, SweepError> {
        let http = build_http_client(&harvest)?;
        let owner = format!("{}-{}", std::process::id(), rand::random::<u32>());
        let inner = Inner {
            db,
            harvest,
            settings,
            owner,
            http,
            clients: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            runtime: std::sync::OnceLock::new(),
        };
        Ok(SweepService { inner: Arc::new(inner) })
    }

    /// Runs sweeps started from now on on `runtime`, such as the server's main runtime.
    pub fn run_on(&self, runtime: tokio::runtime::Handle) {
        let _ = self.inner.runtime.set(runtime);
    }

    pub fn settings(&self) -> &SweepSettings {
        &self.inner.settings
    }

    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// Returns the account's Harvest client, building it from the stored credentials.
    pub async fn client(&self, account_id: i64) -> Result<HarvestClient, SweepError> {
        let stored = self
            .inner
            .db
            .run(move |conn| accounts::harvest_credentials(conn, account_id).map_err(DbError::from))
            .await?;
        let stored = stored.ok_or(SweepError::NoCredentials(account_id))?;

        let mut clients = self.inner.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = clients.get(&account_id)
            && cached.client_id == stored.client_id
        {
            return Ok(cached.client.clone());
        }

        let budget = match clients.get(&account_id) {
            Some(cached) => cached.client.budget().clone(),
            None => Arc::new(Budget::with_window(self.inner.harvest.budget_limit, self.inner.harvest.budget_window)),
        };
        let credentials =
            Credentials { client_id: stored.client_id.clone(), client_secret: stored.client_secret, user_id: stored.user_id };
        let client =
            HarvestClient::with_parts(self.inner.harvest.clone(), account_id, credentials, self.inner.http.clone(), budget)?;
        clients.insert(account_id, CachedClient { client_id: stored.client_id, client: client.clone() });
        Ok(client)
    }

    /// Harvest clients built so far, for metrics.
    pub fn clients(&self) -> Vec<HarvestClient> {
        let clients = self.inner.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.values().map(|cached| cached.client.clone()).collect()
    }

    /// Progress of the account's run in this process, if one is going on.
    pub fn progress(&self, account_id: i64) -> Option<Arc<Progress>> {
        self.inner.running.lock().unwrap_or_else(PoisonError::into_inner).get(&account_id).cloned()
    }

    /// Starts a run in the background and returns its id once the lease is taken. The run
    /// resumes the account's unfinished run if there is one.
    pub async fn start(&self, account_id: i64, mode: Mode) -> Result<i64, SweepError> {
        let progress = Arc::new(Progress::default());
        {
            let mut running = self.inner.running.lock().unwrap_or_else(PoisonError::into_inner);
            if running.contains_key(&account_id) {
                return Err(SweepError::Busy(account_id));
            }
            running.insert(account_id, progress.clone());
        }

        let prepared = match self.prepare(account_id, mode, progress).await {
            Ok(prepared) => prepared,
            Err(error) => {
                self.forget(account_id);
                return Err(error);
            }
        };
        let run_id = prepared.run_id();

        let service = self.clone();
        let task = async move {
            if let Err(error) = prepared.execute().await {
                tracing::error!(account.id = account_id, run.id = run_id, error = %error, "sweep stopped with an error");
            }
            service.forget(account_id);
        };
        match self.inner.runtime.get() {
            Some(runtime) => drop(runtime.spawn(task)),
            None => drop(tokio::spawn(task)),
        }
        Ok(run_id)
    }

    async fn prepare(&self, account_id: i64, mode: Mode, progress: Arc<Progress>) -> Result<run::PreparedRun, SweepError> {
        let client = self.client(account_id).await?;
        run::prepare(&self.inner.db, &client, &self.inner.settings, &self.inner.owner, mode, progress).await
    }

    fn forget(&self, account_id: i64) {
        self.inner.running.lock().unwrap_or_else(PoisonError::into_inner).remove(&account_id);
    }

    /// Asks every run of this process to stop at its next page. Interrupted runs stay
    /// resumable and continue at the next start.
    pub fn cancel_all(&self) {
        for progress in self.inner.running.lock().unwrap_or_else(PoisonError::into_inner).values() {
            progress.cancel();
        }
    }

    /// Waits until no run of this process is going on, or `timeout` passes.
    pub async fn wait_idle(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.inner.running.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the runs that are due until `stop` turns true. An unfinished run comes first.
    /// Next is a full run when none completed within `full_interval`, so a new account gets
    /// its first full sync at once. Otherwise an incremental run starts when none completed
    /// within `incremental_interval`.
    pub async fn run_schedule(self, tick: Duration, stop: tokio::sync::watch::Receiver<bool>) {
        let mut stop = stop;
        loop {
            if let Err(error) = self.start_due_runs().await {
                tracing::warn!(error = %error, "sweep schedule check failed; retrying at the next tick");
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn start_due_runs(&self) -> Result<(), SweepError> {
        let full_every = chrono::Duration::from_std(self.inner.settings.full_interval).unwrap_or(chrono::Duration::days(1));
        let incremental_every =
            chrono::Duration::from_std(self.inner.settings.incremental_interval).unwrap_or(chrono::Duration::minutes(15));
        let due = self
            .inner
            .db
            .run(move |conn| {
                let now = Utc::now();
                let mut due = Vec::new();
                for account in accounts::list(conn)? {
                    if account.disabled || !account.has_harvest_credentials {
                        continue;
                    }
                    let unfinished = sweeps::find_unfinished_run(conn, account.id)?.is_some();
                    let last_full = sweeps::last_completed(conn, account.id, Mode::Full.as_str())?;
                    let last_incremental = sweeps::last_completed(conn, account.id, Mode::Incremental.as_str())?;
                    let last_any = last_full.max(last_incremental);
                    if unfinished || last_full.is_none_or(|at| now - at >= full_every) {
                        due.push((account.id, Mode::Full));
                    } else if last_any.is_none_or(|at| now - at >= incremental_every) {
                        due.push((account.id, Mode::Incremental));
                    }
                }
                Ok::<_, DbError>(due)
            })
            .await?;

        for (account_id, mode) in due {
            if self.progress(account_id).is_some() {
                continue;
            }
            match self.start(account_id, mode).await {
                Ok(run_id) => tracing::info!(account.id = account_id, run.id = run_id, mode = mode.as_str(), "scheduled sweep started"),
                // Another replica is sweeping the account, which is how it should be.
                Err(SweepError::Busy(_)) => {}
                Err(error) => tracing::warn!(account.id = account_id, error = %error, "scheduled sweep could not start"),
            }
        }
        Ok(())
    }

    /// Re-reads records touched by webhooks every `refresh_interval` until `stop` turns true.
    pub async fn run_refreshes(self, stop: tokio::sync::watch::Receiver<bool>) {
        let mut stop = stop;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.inner.settings.refresh_interval) => {}
                _ = stop.changed() => return,
            }
            if let Err(error) = refresh::refresh_all(self.clone()).await {
                tracing::warn!(error = %error, "targeted refresh failed; retrying at the next tick");
            }
        }
    }
}
