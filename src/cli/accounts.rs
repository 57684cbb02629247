//! `greenhouse-sync accounts add|list|show`.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{DatabaseArgs, open_migrated};
use crate::db::accounts::{self, NewAccount};

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account and print it as JSON, with the webhook path to register in Greenhouse.
    Add(AddArgs),
    /// Print every account as a JSON array.
    List,
    /// Print one account as JSON.
    Show {
        /// Account id.
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Display name of the company.
    #[arg(long, env = "GREENHOUSE_SYNC_ACCOUNT_NAME")]
    pub name: String,

    /// Secret key entered in Greenhouse's webhook form; it signs every delivery.
    #[arg(long, env = "GREENHOUSE_SYNC_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: String,

    /// Harvest v3 OAuth client id.
    #[arg(long, env = "GREENHOUSE_SYNC_CLIENT_ID", requires = "client_secret")]
    pub client_id: Option<String>,

    /// Harvest v3 OAuth client secret.
    #[arg(long, env = "GREENHOUSE_SYNC_CLIENT_SECRET", hide_env_values = true, requires = "client_id")]
    pub client_secret: Option<String>,

    /// Greenhouse user id sent as `sub` when requesting Harvest tokens.
    #[arg(long, env = "GREENHOUSE_SYNC_USER_ID")]
    pub user_id: Option<String>,
}

pub fn run(database: &DatabaseArgs, command: &AccountsCommand) -> anyhow::Result<()> {
    let db = open_migrated(database)?;
    let mut conn = db.get()?;
    let output = match command {
        AccountsCommand::Add(args) => {
            let new = new_account(args)?;
            let account = accounts::create(&mut conn, &new, chrono::Utc::now()).context("could not create the account")?;
            tracing::info!(account.id = account.id, "account created");
            serde_json::to_string_pretty(&account)?
        }
        AccountsCommand::List => serde_json::to_string_pretty(&accounts::list(&mut conn)?)?,
        AccountsCommand::Show { id } => {
            let account = accounts::find(&mut conn, *id)?.with_context(|| format!("account {id} not found"))?;
            serde_json::to_string_pretty(&account)?
        }
    };
    println!("{output}");
    Ok(())
}

fn new_account(args: &AddArgs) -> anyhow::Result<NewAccount> {
    if args.name.trim().is_empty() {
        anyhow::bail!("--name must not be empty");
    }
    if args.webhook_secret.is_empty() {
        anyhow::bail!("--webhook-secret must not be empty: Greenhouse signs deliveries with it");
    }
    Ok(NewAccount {
        name: args.name.trim().to_string(),
        webhook_secret: args.webhook_secret.clone(),
        harvest_client_id: args.client_id.clone(),
        harvest_client_secret: args.client_secret.clone(),
        harvest_user_id: args.user_id.clone(),
    })
}
