//! Accounts: one row per Greenhouse company served by this server.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use serde::Serialize;

use super::sql::{Sql, SqlValue, parse_time_text};
use super::{Backend, DbConnection};
use crate::secrets;

/// Associated data that binds sealed webhook secrets to their use. Both webhook secret
/// columns share it, because rotation moves the current value into the previous column.
const WEBHOOK_SECRET_COLUMN: &str = "accounts.webhook_secret";

/// Associated data of sealed Harvest client secrets.
const CLIENT_SECRET_COLUMN: &str = "accounts.harvest_client_secret";

/// Values for a new account. Secrets are held as given; `Debug` hides them.
#[derive(Clone)]
pub struct NewAccount {
    pub name: String,
    pub webhook_secret: String,
    pub harvest_client_id: Option<String>,
    pub harvest_client_secret: Option<String>,
    pub harvest_user_id: Option<String>,
}

impl std::fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccount")
            .field("name", &self.name)
            .field("webhook_secret", &"***")
            .field("harvest_client_id", &self.harvest_client_id)
            .field("harvest_client_secret", &self.harvest_client_secret.as_ref().map(|_| "***"))
            .field("harvest_user_id", &self.harvest_user_id)
            .finish()
    }
}

/// An account as shown to operators: never its secrets.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Account {
    pub id: i64,
    pub name: String,
    /// Path to register as the webhook endpoint in Greenhouse.
    pub webhook_path: String,
    pub harvest_client_id: Option<String>,
    pub harvest_user_id: Option<String>,
    pub has_harvest_credentials: bool,
    pub disabled: bool,
    /// Whether records touched by webhooks are re-read from Harvest by id soon after.
    pub refresh_enabled: bool,
    pub created_at: Option<DateTime<Utc>>,
    /// Until when the webhook secret before the last rotation still verifies deliveries.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// The secrets that may sign this account's deliveries.
#[derive(Clone)]
pub struct WebhookKeys {
    pub current: String,
    /// The secret before the last rotation, while its grace period lasts.
    pub previous: Option<String>,
}

impl std::fmt::Debug for WebhookKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKeys(***)")
    }
}

/// Returns the webhook URL path of an account.
pub fn webhook_path(account_id: i64) -> String {
    format!("/webhooks/greenhouse/{account_id}")
}

#[derive(QueryableByName)]
struct AccountRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Text>)]
    harvest_client_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    harvest_client_secret: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    harvest_user_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    disabled_at: Option<String>,
    #[diesel(sql_type = BigInt)]
    refresh_enabled: i64,
    #[diesel(sql_type = Nullable<Text>)]
    created_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    previous_secret_expires_at: Option<String>,
}

impl From<AccountRow> for Account {
    fn from(row: AccountRow) -> Account {
        Account {
            id: row.id,
            webhook_path: webhook_path(row.id),
            name: row.name,
            has_harvest_credentials: row.harvest_client_id.is_some() && row.harvest_client_secret.is_some(),
            harvest_client_id: row.harvest_client_id,
            harvest_user_id: row.harvest_user_id,
            disabled: row.disabled_at.is_some(),
            refresh_enabled: row.refresh_enabled != 0,
            created_at: row.created_at.as_deref().and_then(parse_time_text),
            previous_secret_expires_at: row.previous_secret_expires_at.as_deref().and_then(parse_time_text),
        }
    }
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Inserts an account and returns it.
pub fn create(conn: &mut DbConnection, new: &NewAccount, now: DateTime<Utc>) -> diesel::QueryResult<Account> {
    let mut sql = Sql::new(conn.backend());
    sql.push(
        "INSERT INTO accounts (name, webhook_secret, harvest_client_id, harvest_client_secret, \
         harvest_user_id, created_at, updated_at) VALUES (",
    );
    sql.bind(SqlValue::Text(Some(new.name.clone()))).push(", ");
    sql.bind(SqlValue::Text(Some(seal(WEBHOOK_SECRET_COLUMN, &new.webhook_secret)?))).push(", ");
    sql.bind(SqlValue::Text(new.harvest_client_id.clone())).push(", ");
    let client_secret = new.harvest_client_secret.as_deref().map(|secret| seal(CLIENT_SECRET_COLUMN, secret)).transpose()?;
    sql.bind(SqlValue::Text(client_secret)).push(", ");
    sql.bind(SqlValue::Text(new.harvest_user_id.clone())).push(", ");
    sql.bind(SqlValue::Time(Some(now))).push(", ").bind(SqlValue::Time(Some(now)));
    sql.push(") RETURNING id");

    let inserted = sql.first::<IdRow>(conn)?.ok_or(diesel::result::Error::NotFound)?;
    find(conn, inserted.id)?.ok_or(diesel::result::Error::NotFound)
}

fn select_accounts(backend: Backend) -> Sql {
    let mut sql = Sql::new(backend);
    sql.push("SELECT id, name, harvest_client_id, harvest_client_secret, harvest_user_id, ");
    sql.push_time_text("disabled_at").push(" AS disabled_at, ");
    // The column is a boolean on PostgreSQL and 1 or 0 on SQLite; both compare to true.
    sql.push("CAST(CASE WHEN refresh_enabled THEN 1 ELSE 0 END AS BIGINT) AS refresh_enabled, ");
    sql.push_time_text("created_at").push(" AS created_at, ");
    sql.push_time_text("previous_secret_expires_at").push(" AS previous_secret_expires_at FROM accounts");
    sql
}

/// Lists every account, oldest first.
pub fn list(conn: &mut DbConnection) -> diesel::QueryResult<Vec<Account>> {
    let mut sql = select_accounts(conn.backend());
    sql.push(" ORDER BY id");
    Ok(sql.load::<AccountRow>(conn)?.into_iter().map(Account::from).collect())
}

/// Finds one account by id.
pub fn find(conn: &mut DbConnection, id: i64) -> diesel::QueryResult<Option<Account>> {
    let mut sql = select_accounts(conn.backend());
    sql.push(" WHERE id = ").bind(SqlValue::Int(Some(id)));
    Ok(sql.first::<AccountRow>(conn)?.map(Account::from))
}

#[derive(QueryableByName)]
struct KeysRow {
    #[diesel(sql_type = Text)]
    webhook_secret: String,
    #[diesel(sql_type = Nullable<Text>)]
    previous_webhook_secret: Option<String>,
}

/// Returns the secrets that may sign deliveries for an enabled account, or `None` when the
/// account does not exist or is disabled.
pub fn webhook_keys(conn: &mut DbConnection, id: i64, now: DateTime<Utc>) -> diesel::QueryResult<Option<WebhookKeys>> {
    let mut sql = Sql::new(conn.backend());
    sql.reuse().push("SELECT webhook_secret, CASE WHEN previous_secret_expires_at > ");
    sql.bind(SqlValue::Time(Some(now)));
    sql.push(" THEN previous_webhook_secret END AS previous_webhook_secret FROM accounts WHERE id = ");
    sql.bind(SqlValue::Int(Some(id)));
    sql.push(" AND disabled_at IS NULL");
    let Some(row) = sql.first::<KeysRow>(conn)? else {
        return Ok(None);
    };
    let current = open(WEBHOOK_SECRET_COLUMN, &row.webhook_secret)?;
    let previous = row.previous_webhook_secret.map(|stored| open(WEBHOOK_SECRET_COLUMN, &stored)).transpose()?;
    Ok(Some(WebhookKeys { current, previous }))
}

/// Harvest v3 credentials of an account, as stored.
#[derive(Clone)]
pub struct HarvestCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub user_id: Option<String>,
}

impl std::fmt::Debug for HarvestCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarvestCredentials").field("client_id", &self.client_id).field("client_secret", &"***").finish()
    }
}

/// Returns the Harvest credentials of an enabled account, or `None` when it has none.
pub fn harvest_credentials(conn: &mut DbConnection, id: i64) -> diesel::QueryResult<Option<HarvestCredentials>> {
    let mut sql = select_accounts(conn.backend());
    sql.push(" WHERE id = ").bind(SqlValue::Int(Some(id))).push(" AND disabled_at IS NULL");
    let row = sql.first::<AccountRow>(conn)?;
    match row.map(|row| (row.harvest_client_id, row.harvest_client_secret, row.harvest_user_id)) {
        Some((Some(client_id), Some(stored_secret), user_id)) => {
            let client_secret = open(CLIENT_SECRET_COLUMN, &stored_secret)?;
            Ok(Some(HarvestCredentials { client_id, client_secret, user_id }))
        }
        _ => Ok(None),
    }
}

/// Replaces an account's Harvest credentials, or clears them with `None`. Returns false when
/// the account does not exist.
pub fn set_harvest_credentials(
    conn: &mut DbConnection,
    id: i64,
    credentials: Option<&HarvestCredentials>,
    now: DateTime<Utc>,
) -> diesel::QueryResult<bool> {
    let client_secret = credentials.map(|c| seal(CLIENT_SECRET_COLUMN, &c.client_secret)).transpose()?;
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE accounts SET harvest_client_id = ").bind(SqlValue::Text(credentials.map(|c| c.client_id.clone())));
    sql.push(", harvest_client_secret = ").bind(SqlValue::Text(client_secret));
    sql.push(", harvest_user_id = ").bind(SqlValue::Text(credentials.and_then(|c| c.user_id.clone())));
    sql.push(", updated_at = ").bind(SqlValue::Time(Some(now)));
    sql.push(" WHERE id = ").bind(SqlValue::Int(Some(id)));
    Ok(sql.execute(conn)? > 0)
}

/// Makes `new_secret` the account's webhook secret. The secret it replaces keeps verifying
/// deliveries until `previous_valid_until`, so deliveries signed while the Greenhouse side
/// is being updated still pass. Returns false when the account does not exist.
pub fn rotate_webhook_secret(
    conn: &mut DbConnection,
    id: i64,
    new_secret: &str,
    previous_valid_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> diesel::QueryResult<bool> {
    // Both backends evaluate every right-hand side of SET against the row before the update,
    // so the previous column receives the old secret.
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE accounts SET previous_webhook_secret = webhook_secret, previous_secret_expires_at = ");
    sql.bind(SqlValue::Time(Some(previous_valid_until)));
    sql.push(", webhook_secret = ").bind(SqlValue::Text(Some(seal(WEBHOOK_SECRET_COLUMN, new_secret)?)));
    sql.push(", updated_at = ").bind(SqlValue::Time(Some(now)));
    sql.push(" WHERE id = ").bind(SqlValue::Int(Some(id)));
    Ok(sql.execute(conn)? > 0)
}

/// Disables or enables an account. A disabled account's deliveries get 404 and it is not
/// swept. Returns false when the account does not exist.
pub fn set_disabled(conn: &mut DbConnection, id: i64, disabled: bool, now: DateTime<Utc>) -> diesel::QueryResult<bool> {
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE accounts SET disabled_at = ");
    if disabled {
        // Keep the first disabling time when the account is disabled twice.
        sql.push("COALESCE(disabled_at, ").bind(SqlValue::Time(Some(now))).push(")");
    } else {
        sql.push("NULL");
    }
    sql.push(", updated_at = ").bind(SqlValue::Time(Some(now)));
    sql.push(" WHERE id = ").bind(SqlValue::Int(Some(id)));
    Ok(sql.execute(conn)? > 0)
}

/// Turns the targeted refresh of an account on or off. Turning it off also empties the
/// account's refresh queue. Returns false when the account does not exist.
pub fn set_refresh(conn: &mut DbConnection, id: i64, enabled: bool, now: DateTime<Utc>) -> diesel::QueryResult<bool> {
    let mut sql = Sql::new(conn.backend());
    sql.push("UPDATE accounts SET refresh_enabled = ").push(bool_literal(conn.backend(), enabled));
    sql.push(", updated_at = ").bind(SqlValue::Time(Some(now)));
    sql.push(" WHERE id = ").bind(SqlValue::Int(Some(id)));
    let updated = sql.execute(conn)? > 0;

    if updated && !enabled {
        let mut clear = Sql::new(conn.backend());
        clear.push("DELETE FROM refresh_queue WHERE account_id = ").bind(SqlValue::Int(Some(id)));
        clear.execute(conn)?;
    }
    Ok(updated)
}

/// Writes a boolean the way the backend's column stores it.
fn bool_literal(backend: Backend, value: bool) -> &'static str {
    match (backend, value) {
        (Backend::Postgres, true) => "TRUE",
        (Backend::Postgres, false) => "FALSE",
        (Backend::Sqlite, true) => "1",
        (Backend::Sqlite, false) => "0",
    }
}

/// Deletes an account with all its data: every table refers to accounts with
/// `ON DELETE CASCADE` (SQLite connections turn foreign keys on). Returns false when the
/// account does not exist.
pub fn delete(conn: &mut DbConnection, id: i64) -> diesel::QueryResult<bool> {
    let mut sql = Sql::new(conn.backend());
    sql.push("DELETE FROM accounts WHERE id = ").bind(SqlValue::Int(Some(id)));
    Ok(sql.execute(conn)? > 0)
}

#[derive(QueryableByName)]
struct SecretsRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    webhook_secret: String,
    #[diesel(sql_type = Nullable<Text>)]
    previous_webhook_secret: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    harvest_client_secret: Option<String>,
}

/// Checks that every sealed secret opens with the installed master key and seals the ones
/// stored as plaintext. Returns the number of accounts rewritten. Run at start-up, so a
/// wrong master key stops the process before it rejects every delivery.
pub fn seal_plaintext_secrets(conn: &mut DbConnection, now: DateTime<Utc>) -> diesel::QueryResult<usize> {
    let mut sql = Sql::new(conn.backend());
    sql.push("SELECT id, webhook_secret, previous_webhook_secret, harvest_client_secret FROM accounts ORDER BY id");
    let rows = sql.load::<SecretsRow>(conn)?;

    let mut rewritten = 0;
    for row in rows {
        let current = reseal(WEBHOOK_SECRET_COLUMN, &row.webhook_secret)?;
        let previous = row.previous_webhook_secret.as_deref().map(|s| reseal(WEBHOOK_SECRET_COLUMN, s)).transpose()?.flatten();
        let client = row.harvest_client_secret.as_deref().map(|s| reseal(CLIENT_SECRET_COLUMN, s)).transpose()?.flatten();
        if current.is_none() && previous.is_none() && client.is_none() {
            continue;
        }

        let mut update = Sql::new(conn.backend());
        update.push("UPDATE accounts SET webhook_secret = ").bind(SqlValue::Text(Some(current.unwrap_or(row.webhook_secret))));
        update.push(", previous_webhook_secret = ").bind(SqlValue::Text(previous.or(row.previous_webhook_secret)));
        update.push(", harvest_client_secret = ").bind(SqlValue::Text(client.or(row.harvest_client_secret)));
        update.push(", updated_at = ").bind(SqlValue::Time(Some(now)));
        update.push(" WHERE id = ").bind(SqlValue::Int(Some(row.id)));
        update.execute(conn)?;
        rewritten += 1;
    }
    Ok(rewritten)
}

/// Returns the sealed form of a plaintext value, or `None` when `stored` is already sealed
/// (after checking that it opens).
fn reseal(column: &str, stored: &str) -> diesel::QueryResult<Option<String>> {
    if secrets::is_sealed(stored) {
        open(column, stored)?;
        return Ok(None);
    }
    seal(column, stored).map(Some)
}

fn seal(column: &str, plaintext: &str) -> diesel::QueryResult<String> {
    secrets::seal(column, plaintext).map_err(|error| diesel::result::Error::SerializationError(Box::new(error)))
}

fn open(column: &str, stored: &str) -> diesel::QueryResult<String> {
    secrets::open(column, stored).map_err(|error| diesel::result::Error::DeserializationError(Box::new(error)))
}
