//! The change feed: products follow what changed in an account, in order, through
//! `GET /admin/accounts/{id}/changes` (long polling) or its `/stream` (Server-Sent Events).
//!
//! Changes are stored by `db::changes` in the transaction that writes the records. This
//! module wakes the feed's readers in this process once such a transaction has committed.
//! Readers also look again every second, which is how writes of other replicas reach them.

pub mod http;
mod page;
mod stream;
pub mod retention;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use tokio::sync::watch;

use crate::db::changes::{NewChange, Source};
use crate::metrics::changes as metrics;

/// Per account, the newest sequence number this process has seen committed. Readers wait
/// for it to move.
///
/// The map is keyed by account id alone, so two databases served by one process (tests do
/// that) share entries, which only costs their readers a spurious wake.
static NEWEST: LazyLock<Mutex<HashMap<i64, watch::Sender<i64>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

thread_local! {
    /// Accounts whose changes the current thread appended in a transaction that has not
    /// been published yet, with the last sequence number appended.
    static PENDING: RefCell<HashMap<i64, i64>> = RefCell::new(HashMap::new());
}

/// Returns a receiver that is notified by every later `publish_pending` of the account.
pub fn subscribe(account_id: i64) -> watch::Receiver<i64> {
    let mut newest = NEWEST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    newest.entry(account_id).or_insert_with(|| watch::channel(0).0).subscribe()
}

/// Notes changes appended in the current thread's open transaction. Called by
/// `db::changes::append`; the caller publishes them once the transaction has committed.
pub(crate) fn note_appended(account_id: i64, source: Source, changes: &[NewChange], last_seq: i64) {
    PENDING.with(|pending| {
        let mut pending = pending.borrow_mut();
        let entry = pending.entry(account_id).or_insert(last_seq);
        *entry = (*entry).max(last_seq);
    });
    // NOTE: counted when appended, so changes of a transaction rolled back afterwards (a
    // webhook that fails part-way through applying) are counted too.
    for change in changes {
        metrics::change_appended(change.resource.name(), change.kind.as_str(), source.as_str());
    }
}

/// Wakes this process's readers of every account the current thread appended changes to.
/// Call it after the writing transaction ended; a wake after a rollback is harmless, since
/// readers only look again.
pub fn publish_pending() {
    let pending = PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
    if pending.is_empty() {
        return;
    }
    let newest = NEWEST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for (account_id, last_seq) in pending {
        metrics::newest_seq(account_id, last_seq);
        if let Some(sender) = newest.get(&account_id) {
            sender.send_modify(|seen| *seen = (*seen).max(last_seq));
        }
    }
}
