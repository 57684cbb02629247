//! Change feed metrics: changes appended, the newest sequence number per account, and the
//! feed's connected clients. They register in the process registry on first use, which
//! `register` forces at start-up so that a scrape lists them before the first change.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use super::registry::metrics;

struct ChangeMetrics {
    appended: IntCounterVec,
    newest_seq: IntGaugeVec,
    clients: IntGaugeVec,
}

// The definitions are constants, so the `expect`s below fail only on a programming error (a
// bad name or a name registered twice), which every test that appends a change shows.
static CHANGE_METRICS: LazyLock<ChangeMetrics> = LazyLock::new(|| {
    let registry = &metrics().registry;
    let appended = IntCounterVec::new(
        Opts::new("greenhouse_sync_changes_appended_total", "Changes appended to the change feed by this process"),
        &["resource", "kind", "source"],
    )
    .expect("valid counter definition");
    let newest_seq = IntGaugeVec::new(
        Opts::new(
            "greenhouse_sync_changes_newest_seq",
            "Newest change feed sequence number of the account committed by this process or read by a feed client",
        ),
        &["account_id"],
    )
    .expect("valid gauge definition");
    let clients = IntGaugeVec::new(
        Opts::new("greenhouse_sync_changes_clients", "Change feed clients connected now, by mode (long_poll, stream)"),
        &["mode"],
    )
    .expect("valid gauge definition");
    registry.register(Box::new(appended.clone())).expect("metric registered once");
    registry.register(Box::new(newest_seq.clone())).expect("metric registered once");
    registry.register(Box::new(clients.clone())).expect("metric registered once");
    for mode in ["long_poll", "stream"] {
        clients.with_label_values(&[mode]).set(0);
    }
    ChangeMetrics { appended, newest_seq, clients }
});

/// Registers the change feed metrics now rather than at their first use.
pub fn register() {
    LazyLock::force(&CHANGE_METRICS);
}

/// Records one appended change.
pub fn change_appended(resource: &str, kind: &str, source: &str) {
    CHANGE_METRICS.appended.with_label_values(&[resource, kind, source]).inc();
}

/// Records the newest sequence number known for an account.
pub fn newest_seq(account_id: i64, seq: i64) {
    CHANGE_METRICS.newest_seq.with_label_values(&[&account_id.to_string()]).set(seq);
}

/// Records a feed client connecting (`delta` 1) or leaving (`delta` -1); `mode` is
/// `long_poll` or `stream`.
pub fn client_connected(mode: &str, delta: i64) {
    CHANGE_METRICS.clients.with_label_values(&[mode]).add(delta);
}
