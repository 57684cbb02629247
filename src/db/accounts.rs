//! Accounts: one row per Greenhouse company served by this server.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use serde::Serialize;

use super::sql::{Sql, SqlValue, parse_time_text};
use super::{Backend, DbConnection};

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
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Account {
    pub id: i64,
    pub name: String,
    /// Path to register as the webhook endpoint in Greenhouse.
    pub webhook_path: String,
    pub harvest_client_id: Option<String>,
    pub harvest_user_id: Option<String>,
    pub has_harvest_credentials: bool,
    pub disabled: bool,
    pub created_at: Option<DateTime<Utc>>,
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
    #[diesel(sql_type = Nullable<Text>)]
    created_at: Option<String>,
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
            created_at: row.created_at.as_deref().and_then(parse_time_text),
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
    sql.bind(SqlValue::Text(Some(new.webhook_secret.clone()))).push(", ");
    sql.bind(SqlValue::Text(new.harvest_client_id.clone())).push(", ");
    sql.bind(SqlValue::Text(new.harvest_client_secret.clone())).push(", ");
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
    sql.push_time_text("created_at").push(" AS created_at FROM accounts");
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
    sql.push("SELECT webhook_secret, CASE WHEN previous_secret_expires_at > ");
    sql.bind(SqlValue::Time(Some(now)));
    sql.push(" THEN previous_webhook_secret END AS previous_webhook_secret FROM accounts WHERE id = ");
    sql.bind(SqlValue::Int(Some(id)));
    sql.push(" AND disabled_at IS NULL");
    let row = sql.first::<KeysRow>(conn)?;
    Ok(row.map(|r| WebhookKeys { current: r.webhook_secret, previous: r.previous_webhook_secret }))
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
    Ok(row.and_then(|row| match (row.harvest_client_id, row.harvest_client_secret) {
        (Some(client_id), Some(client_secret)) => {
            Some(HarvestCredentials { client_id, client_secret, user_id: row.harvest_user_id })
        }
        _ => None,
    }))
}
