//! Database faults: PostgreSQL stopped while deliveries arrive, a connection pool with every
//! connection held, and SQLite under hundreds of concurrent writers beside a sweep.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use greenhouse_sync::db::{Backend, Database, DbConnection};
use greenhouse_sync::sim::{self, SimConfig, Sizes, WebhookConfig};

use crate::child::{ChildEnv, ServerChild, free_port};
use crate::cluster::{PrivateCluster, postgres_database};
use crate::convergence::{assert_converged, difference, open_reader, runs};
use crate::deliveries::{self, Outgoing, effective_rows, stored};
use crate::report_figures;
use crate::support::TestDatabase;

const HOOK_SECRET: &str = "fault-hook-secret";

/// Seconds a request waits for a pool connection in these tests before the server
/// responds with 503.
const ACQUIRE_TIMEOUT_SECS: u64 = 1;

fn small_sim() -> SimConfig {
    SimConfig { rate_limit: 100_000, ..SimConfig::default() }
}

/// Sends `delivery` until it gets 200, as Greenhouse's retries would, at most 20 times.
async fn deliver_until_accepted(http: &reqwest::Client, url: &str, delivery: &Outgoing) -> u64 {
    for attempt in 1..=20 {
        if deliveries::send(http, url, delivery).await == Some(200) {
            return attempt;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("delivery {} still not accepted after 20 attempts", delivery.event_id);
}

/// Polls `path` until it returns `expected`, for at most `timeout`.
async fn wait_for_status(server: &ServerChild, http: &reqwest::Client, path: &str, expected: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while server.get_status(http, path).await != Some(expected) {
        assert!(Instant::now() < deadline, "{path} did not answer {expected} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the account has a completed sweep run.
async fn wait_for_completed_run(db: &Database, account_id: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !runs(db, account_id).iter().any(|run| run.status == "completed") {
        assert!(Instant::now() < deadline, "no sweep completed within {timeout:?}: {:?}", runs(db, account_id));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// PostgreSQL is stopped as if it crashed while deliveries arrive. Every delivery gets 503
/// and nothing is stored, the process stays up and `/readyz` fails. Once PostgreSQL is
/// back, greenhouse-sim's retries and resent deliveries are stored, and the targeted
/// refresh makes the copy equal ground truth without a sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_postgres_answers_503() {
    let Some(cluster) = PrivateCluster::start() else { return };
    let dir = tempfile::tempdir().expect("log dir");
    let env = ChildEnv::new(&cluster.url(), dir.path());
    let account_id = env.add_account(HOOK_SECRET, true);
    let db = open_reader(&cluster.url());
    let http = crate::http_client();

    // Greenhouse's retry waits (1, 15, 60, 120, 240 and 480 minutes) divided by 4000: about
    // 14 s in all, longer than the outage below.
    let port = free_port();
    let webhook_url = format!("http://127.0.0.1:{port}/webhooks/greenhouse/{account_id}");
    let mut webhook = WebhookConfig::new(webhook_url.clone(), HOOK_SECRET);
    webhook.retry_scale = 4000.0;
    webhook.timeout = Duration::from_secs(10);
    let sim = sim::start(SimConfig { webhook: Some(webhook), ..small_sim() }).await.expect("start simulator");
    let env = env.with_sim(&sim);
    let timeout = ACQUIRE_TIMEOUT_SECS.to_string();
    let mut server = env
        .serve(port, &[
            "--schedule", "true", "--refresh-interval-secs", "1", "--db-pool-size", "4",
            "--db-acquire-timeout-secs", &timeout, "--harvest-budget", "100000",
        ])
        .await;
    wait_for_completed_run(&db, account_id, Duration::from_secs(60)).await;
    assert_converged(&http, &sim, &db, account_id).await;
    assert_eq!(server.get_status(&http, "/readyz").await, Some(200), "ready before the outage");

    cluster.stop_immediate();
    let outage_started = Instant::now();
    let direct = deliveries::mutations(&sim, 3, HOOK_SECRET, 0);
    sim.state().mutate(3, None);
    let mut rejected = 0u64;
    for delivery in &direct {
        let started = Instant::now();
        let status = deliveries::send(&http, &webhook_url, delivery).await;
        assert_eq!(status, Some(503), "delivery {} while PostgreSQL is down", delivery.event_id);
        assert!(started.elapsed() < Duration::from_secs(5), "503 within the acquire bound, took {:?}", started.elapsed());
        rejected += 1;
    }
    assert_eq!(server.get_status(&http, "/readyz").await, Some(503), "/readyz fails while PostgreSQL is down");
    assert_eq!(server.get_status(&http, "/healthz").await, Some(200), "the process keeps answering");
    assert!(server.process.exited().is_none(), "the server stays up");

    cluster.start_again();
    let outage = outage_started.elapsed();
    wait_for_status(&server, &http, "/readyz", 200, Duration::from_secs(15)).await;
    let nothing_stored = stored(&db, account_id);
    for delivery in &direct {
        assert!(!nothing_stored.contains_key(&delivery.event_id), "{} answered 503 yet stored", delivery.event_id);
    }

    let mut resent = 0;
    for delivery in &direct {
        resent += deliver_until_accepted(&http, &webhook_url, delivery).await;
    }
    let sender = sim.state().webhooks.clone().expect("sender");
    let deadline = Instant::now() + Duration::from_secs(40);
    while sender.stats().pending > 0 {
        assert!(Instant::now() < deadline, "the sender still has deliveries pending: {:?}", sender.stats());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = sender.stats();
    assert_eq!(stats.gave_up, 0, "no delivery given up: {stats:?}");
    assert!(stats.failed_attempts > 0, "the sender saw the outage: {stats:?}");

    let stored_now = stored(&db, account_id);
    for delivery in &direct {
        assert_eq!(stored_now.get(&delivery.event_id).map(|o| effective_rows(o)), Some(1), "{} stored once", delivery.event_id);
    }
    let sender_rows = stored_now.keys().filter(|id| id.starts_with("sim-")).count() as u64;
    assert_eq!(sender_rows, stats.delivered, "each 200 the sender got is a stored delivery");

    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(reason) = difference(&http, &sim, &db, account_id).await {
        assert!(Instant::now() < deadline, "targeted refreshes did not repair the copy: {reason}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(server.process.exited().is_none(), "the server stayed up through the outage");
    report_figures("stopped_postgres_answers_503", &[
        ("outage_ms", outage.as_millis() as u64),
        ("direct_deliveries_503", rejected),
        ("direct_attempts_after_restart", resent),
        ("sender_failed_attempts", stats.failed_attempts),
        ("sender_delivered_200", stats.delivered),
        ("lost", 0),
    ]);
    sim.stop().await;
}

/// Holds the write lock from outside the server, so that every delivery that reaches its
/// write keeps its pool connection while it waits.
fn block_writes(conn: &mut DbConnection) {
    match conn {
        DbConnection::Sqlite(c) => c.batch_execute("BEGIN IMMEDIATE").expect("take the SQLite write lock"),
        DbConnection::Postgres(c) => {
            c.batch_execute("BEGIN; LOCK TABLE webhook_deliveries IN EXCLUSIVE MODE").expect("lock the delivery log")
        }
    }
}

fn unblock_writes(conn: &mut DbConnection) {
    match conn {
        DbConnection::Sqlite(c) => c.batch_execute("ROLLBACK").expect("release the SQLite write lock"),
        DbConnection::Postgres(c) => c.batch_execute("ROLLBACK").expect("release the table lock"),
    }
}

/// With a pool of two connections both held by deliveries stuck behind a lock, the next
/// delivery waits the one-second acquire bound and gets 503. Once the lock goes, the stuck
/// deliveries finish with 200 and new ones are accepted at once.
///
/// On SQLite one writer thread stores every delivery, so one delivery stuck behind the lock
/// holds it, and the next waits in its queue for the same bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_waits_then_503() {
    let database = TestDatabase::create();
    let dir = tempfile::tempdir().expect("log dir");
    let sim = sim::start(small_sim()).await.expect("start simulator");
    let env = ChildEnv::new(&database.url, dir.path());
    let account_id = env.add_account(HOOK_SECRET, false);
    let db = open_reader(&database.url);
    let http = crate::http_client();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/webhooks/greenhouse/{account_id}");
    let timeout = ACQUIRE_TIMEOUT_SECS.to_string();
    let _server = env.serve(port, &["--schedule", "false", "--db-pool-size", "2", "--db-acquire-timeout-secs", &timeout]).await;
    let outgoing = deliveries::mutations(&sim, 6, HOOK_SECRET, 0);
    let [warm_up, held_a, held_b, rejected, after, ..] = outgoing.as_slice() else { panic!("six mutations give six webhooks at least") };
    assert_eq!(deliveries::send(&http, &url, warm_up).await, Some(200), "accepted before the pool is exhausted");

    let mut blocker = db.get().expect("blocking connection");
    block_writes(&mut blocker);
    let (stuck, sent_later) = match db.backend() {
        Backend::Postgres => (vec![held_a.clone(), held_b.clone()], None),
        Backend::Sqlite => (vec![held_a.clone()], Some(held_b)),
    };
    let held: Vec<_> = stuck
        .into_iter()
        .map(|delivery| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { deliveries::send(&http, &url, &delivery).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let status = deliveries::send(&http, &url, rejected).await;
    let waited = started.elapsed();
    assert_eq!(status, Some(503), "no connection free within the acquire timeout");
    assert!(waited >= Duration::from_millis(900), "waited for a connection before the 503: {waited:?}");
    assert!(waited < Duration::from_secs(4), "the wait is bounded by the acquire timeout: {waited:?}");

    tokio::time::sleep(Duration::from_millis(1000)).await;
    unblock_writes(&mut blocker);
    drop(blocker);
    for handle in held {
        assert_eq!(handle.await.expect("held delivery"), Some(200), "a delivery that waited for the lock is stored");
    }

    let started = Instant::now();
    assert_eq!(deliveries::send(&http, &url, after).await, Some(200), "accepted once connections are free");
    assert!(started.elapsed() < Duration::from_secs(1), "no wait once connections are free: {:?}", started.elapsed());
    assert_eq!(deliveries::send(&http, &url, rejected).await, Some(200), "the rejected delivery is accepted when resent");
    if let Some(delivery) = sent_later {
        assert_eq!(deliveries::send(&http, &url, delivery).await, Some(200), "accepted once the writer is free");
    }

    let stored = stored(&db, account_id);
    for delivery in [warm_up, held_a, held_b, rejected, after] {
        assert_eq!(stored.get(&delivery.event_id).map(|o| effective_rows(o)), Some(1), "{} stored once", delivery.event_id);
    }
    report_figures("exhausted_pool_waits_then_503", &[
        ("deliveries_sent", 6),
        ("answered_200", 5),
        ("rejected_503", 1),
        ("wait_ms", waited.as_millis() as u64),
        ("lost", 0),
    ]);
    sim.stop().await;
}

/// Hundreds of deliveries at once on SQLite while a full sweep stores its pages. No write
/// fails with "database is locked" and a sweep completes. Every delivery is stored once,
/// at the first attempt or after a 503 for waiting past the pool's acquire timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writers_never_see_lock_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = dir.path().join("writers.db").display().to_string();
    let sizes = Sizes { candidates: 1500, applications: 1800, ..Sizes::default() };
    let sim = sim::start(SimConfig { sizes, latency: Duration::from_millis(30), ..small_sim() }).await.expect("start simulator");
    let env = ChildEnv::new(&url, dir.path()).with_sim(&sim);
    let account_id = env.add_account(HOOK_SECRET, true);
    let db = open_reader(&url);
    let http = crate::http_client();
    let port = free_port();
    let webhook_url = format!("http://127.0.0.1:{port}/webhooks/greenhouse/{account_id}");
    let server = env
        .serve(port, &["--schedule", "true", "--harvest-budget", "100000", "--sweep-per-page", "20", "--sweep-pages-in-flight", "2"])
        .await;

    let deadline = Instant::now() + Duration::from_secs(30);
    while !runs(&db, account_id).iter().any(|run| run.status == "running" && run.pages > 0) {
        assert!(Instant::now() < deadline, "the first sweep did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pages_stored = |db: &Database| runs(db, account_id).first().map_or(0, |run| run.pages);
    let pages_before = pages_stored(&db);
    let burst = deliveries::mutations(&sim, 400, HOOK_SECRET, 0);
    let statuses = futures_util::future::join_all(burst.iter().map(|delivery| deliveries::send(&http, &webhook_url, delivery))).await;
    let pages_during = pages_stored(&db) - pages_before;

    // A delivery may wait longer than the 5 s acquire timeout for one of the ten pool
    // connections when the machine is busy. It then gets 503 and Greenhouse retries it.
    // Any other status, or a lock error in the log, is a failure.
    let first_attempt_503: Vec<&Outgoing> =
        burst.iter().zip(&statuses).filter(|(_, status)| **status == Some(503)).map(|(delivery, _)| delivery).collect();
    let other: Vec<_> = statuses.iter().filter(|status| !matches!(status, Some(200) | Some(503))).collect();
    assert!(other.is_empty(), "only 200 or 503, not {other:?}: {:?}", env.log_lines("ERROR"));
    assert!(pages_during > 0, "the sweep stored pages while the burst was written");
    let mut resend_attempts = 0;
    for delivery in &first_attempt_503 {
        resend_attempts += deliver_until_accepted(&http, &webhook_url, delivery).await;
    }
    wait_for_completed_run(&db, account_id, Duration::from_secs(60)).await;
    drop(server);

    let lock_errors = env.log_lines("database is locked");
    assert!(lock_errors.is_empty(), "no lock errors: {lock_errors:?}");
    let failed_runs: Vec<_> = runs(&db, account_id).into_iter().filter(|run| run.status != "completed").collect();
    assert!(failed_runs.is_empty(), "every sweep run completed: {failed_runs:?}");
    let stored = stored(&db, account_id);
    let lost: Vec<_> = burst.iter().filter(|delivery| stored.get(&delivery.event_id).map(|o| effective_rows(o)) != Some(1)).collect();
    assert!(lost.is_empty(), "every delivery stored once: {lost:?}");
    report_figures("sqlite_writers_never_see_lock_errors", &[
        ("concurrent_deliveries", burst.len() as u64),
        ("sweep_pages_stored_during_burst", pages_during as u64),
        ("first_attempt_200", (burst.len() - first_attempt_503.len()) as u64),
        ("first_attempt_503_pool_wait", first_attempt_503.len() as u64),
        ("resend_attempts", resend_attempts),
        ("lock_errors", lock_errors.len() as u64),
        ("lost", lost.len() as u64),
    ]);
    sim.stop().await;
}

/// A sweep whose page store waits past the acquire timeout, because webhook deliveries hold
/// every pool connection, keeps its run and completes it. A failed run would not be
/// resumed, so the next run would start over. PostgreSQL only, where a table lock blocks
/// the deliveries but not the sweep's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_survives_pool_wait() {
    let Some((url, _database, _cluster)) = postgres_database() else { return };
    let sizes = Sizes { candidates: 600, applications: 700, ..Sizes::default() };
    let sim = sim::start(SimConfig { sizes, latency: Duration::from_millis(50), ..small_sim() }).await.expect("start simulator");
    let dir = tempfile::tempdir().expect("log dir");
    let env = ChildEnv::new(&url, dir.path()).with_sim(&sim);
    let account_id = env.add_account(HOOK_SECRET, true);
    let db = open_reader(&url);
    let http = crate::http_client();
    let port = free_port();
    let webhook_url = format!("http://127.0.0.1:{port}/webhooks/greenhouse/{account_id}");
    let timeout = ACQUIRE_TIMEOUT_SECS.to_string();
    let _server = env
        .serve(port, &[
            "--schedule", "true", "--db-pool-size", "2", "--db-acquire-timeout-secs", &timeout,
            "--harvest-budget", "100000", "--sweep-per-page", "20", "--sweep-pages-in-flight", "1",
        ])
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let run_id = loop {
        if let Some(run) = runs(&db, account_id).into_iter().find(|run| run.status == "running" && run.pages > 0) {
            break run.id;
        }
        assert!(Instant::now() < deadline, "the first sweep did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    let mut blocker = db.get().expect("blocking connection");
    block_writes(&mut blocker);
    let held = deliveries::mutations(&sim, 2, HOOK_SECRET, 0).into_iter().take(2).map(|delivery| {
        let (http, url) = (http.clone(), webhook_url.clone());
        tokio::spawn(async move { deliveries::send(&http, &url, &delivery).await })
    });
    let held: Vec<_> = held.collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    unblock_writes(&mut blocker);
    drop(blocker);
    for handle in held {
        assert_eq!(handle.await.expect("held delivery"), Some(200), "a delivery that waited for the lock is stored");
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run = runs(&db, account_id).into_iter().find(|run| run.id == run_id).expect("the run exists");
        if run.status != "running" {
            break run;
        }
        assert!(Instant::now() < deadline, "the run did not end within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run.status, "completed", "the run outlives a pool wait: {run:?}");
    sim.stop().await;
}

#[derive(diesel::QueryableByName)]
struct BackendPid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// Reads the process id of the PostgreSQL backend serving a new checkout from `db`.
fn backend_pid(db: &Database) -> Result<i32, String> {
    use diesel::RunQueryDsl;
    let mut conn = db.get().map_err(|e| e.to_string())?;
    let DbConnection::Postgres(pg) = &mut **conn else {
        return Err("not a PostgreSQL connection".to_string());
    };
    diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result::<BackendPid>(pg).map(|row| row.pid).map_err(|e| e.to_string())
}

/// A connection that PostgreSQL closed while it sat in the pool fails at most one checkout,
/// and the pool then drops it. A connection returned moments ago is handed out without a
/// test query, so that one failure is allowed.
#[test]
fn pool_drops_a_connection_the_server_closed() {
    let database = TestDatabase::create();
    if database.db.backend() != Backend::Postgres {
        return;
    }
    let first = backend_pid(&database.db).expect("first checkout");

    // Another session ends the pooled connection's backend, as a restart or an operator would.
    let other = Database::open(&database.url, &greenhouse_sync::db::PoolSettings::default());
    let mut kill = greenhouse_sync::db::sql::Sql::new(Backend::Postgres);
    kill.push(&format!("SELECT pg_terminate_backend({first})"));
    kill.execute(&mut other.get().expect("second pool")).expect("terminate the backend");

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut failures = 0;
    let replacement = loop {
        match backend_pid(&database.db) {
            Ok(pid) if pid != first => break pid,
            Ok(_) => panic!("the terminated backend {first} still answered"),
            Err(_) => failures += 1,
        }
        assert!(Instant::now() < deadline, "no working connection after {failures} failures");
    };
    assert!(failures <= 1, "a closed connection failed {failures} checkouts; the pool should drop it after one");
    assert_ne!(replacement, first);
}
