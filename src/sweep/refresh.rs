//! Targeted refresh: records touched by webhooks are re-read from Harvest by id.
//!
//! Webhook payloads are partial and most carry no version timestamp, so an out-of-order
//! delivery can leave a stale value. Re-reading the record a few seconds later and storing
//! the complete v3 version through the guarded upsert repairs it long before the next sweep.

use std::collections::BTreeMap;

use chrono::Utc;

use super::run::SweepError;
use super::service::SweepService;
use crate::db::changes::{ChangeSet, Source};
use crate::db::records;
use crate::db::{DbError, accounts, sweeps};
use crate::greenhouse::Resource;
use crate::greenhouse::harvest::MAX_IDS;

/// Queued records read per account and tick; the rest wait for the next tick.
const MAX_PER_TICK: i64 = 500;

/// Refreshes the queued records of every account.
pub async fn refresh_all(service: SweepService) -> Result<(), SweepError> {
    let accounts = service.database().run(|conn| accounts::list(conn).map_err(DbError::from)).await?;
    for account in accounts {
        let outcome = if account.disabled || !account.has_harvest_credentials {
            drop_queue(&service, account.id).await
        } else {
            refresh_account(&service, account.id).await.map(|_| ())
        };
        if let Err(error) = outcome {
            tracing::warn!(account.id = account.id, error = %error, "targeted refresh failed for the account");
        }
    }
    Ok(())
}

/// Refreshes up to `MAX_PER_TICK` queued records of one account, at most 50 ids a request.
/// Returns how many records Harvest returned.
pub async fn refresh_account(service: &SweepService, account_id: i64) -> Result<usize, SweepError> {
    let now = Utc::now();
    let queued = service
        .database()
        .run(move |conn| sweeps::queued_refreshes(conn, account_id, now, MAX_PER_TICK).map_err(DbError::from))
        .await?;
    if queued.is_empty() {
        return Ok(0);
    }

    let mut by_resource: BTreeMap<Resource, Vec<i64>> = BTreeMap::new();
    for (resource, id) in queued {
        by_resource.entry(resource).or_default().push(id);
    }

    let client = service.client(account_id).await?;
    let mut refreshed = 0;
    for (resource, ids) in by_resource {
        for batch in ids.chunks(MAX_IDS) {
            refreshed += refresh_batch(service, &client, account_id, resource, batch).await?;
        }
    }
    Ok(refreshed)
}

async fn refresh_batch(
    service: &SweepService,
    client: &crate::greenhouse::harvest::HarvestClient,
    account_id: i64,
    resource: Resource,
    ids: &[i64],
) -> Result<usize, SweepError> {
    let records = match client.get_by_ids(resource.name(), ids).await {
        Ok(records) => records,
        // Without read access the ids can never be refreshed, so they leave the queue.
        Err(error) if error.is_forbidden() => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    let count = records.len();
    let ids = ids.to_vec();
    service
        .database()
        .run(move |conn| {
            let stored = conn.write_transaction(|conn| {
                // NOTE: an id Harvest did not return is left as it is. A full sweep decides
                // whether it was deleted, because the credentials may simply not see it.
                let now = Utc::now();
                let mut changes = ChangeSet::new(account_id, Source::Refresh);
                records::upsert_v3_records(conn, account_id, resource, &records, None, &mut changes, now)?;
                sweeps::dequeue_refreshes(conn, account_id, resource, &ids)?;
                changes.append(conn, now)?;
                Ok::<_, SweepError>(())
            });
            crate::changes::publish_pending();
            stored
        })
        .await?;
    Ok(count)
}

async fn drop_queue(service: &SweepService, account_id: i64) -> Result<(), SweepError> {
    service
        .database()
        .run(move |conn| sweeps::clear_refresh_queue(conn, account_id).map_err(DbError::from))
        .await?;
    Ok(())
}
