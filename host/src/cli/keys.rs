//! `bay keys create|list|revoke`: API keys managed on the database directly
//! (a running Bay sees the change within `auth::KEY_CACHE_TTL`).

use std::path::Path;

use anyhow::Context;

use crate::config::{Config, DatabaseUrl};
use crate::db::Db;
use crate::keys::{self, NewKey, Scope};

async fn database(config: Option<&Path>) -> anyhow::Result<Db> {
    let (config, _) = Config::load(config)?;
    Db::connect(&DatabaseUrl::parse(&config.database.url)?, 1).await.context("opening the database")
}

/// Creates a key and prints it as JSON (the plaintext `key` is shown only here).
pub async fn create(config: Option<&Path>, owner: String, scopes: Vec<String>, name: Option<String>) -> anyhow::Result<()> {
    let scopes = if scopes.is_empty() { vec!["user".to_owned()] } else { scopes };
    let scopes = scopes
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| Scope::parse(s).with_context(|| format!("unknown scope {s:?} (admin, user)")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let db = database(config).await?;
    let created = keys::create(&db, NewKey { owner, scopes, name }).await.map_err(|e| anyhow::anyhow!(e.message))?;
    println!("{}", serde_json::to_string_pretty(&created)?);
    Ok(())
}

/// Lists every key (revoked ones included), one per line.
pub async fn list(config: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let db = database(config).await?;
    let keys = keys::list(&db).await.map_err(|e| anyhow::anyhow!(e.message))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(());
    }
    println!("{:<36}  {:<12}  {:<16}  {:<10}  {:<7}  {:<26}  NAME", "ID", "PREFIX", "OWNER", "SCOPES", "ACTIVE", "CREATED");
    for k in keys {
        let scopes = k.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        println!(
            "{:<36}  {:<12}  {:<16}  {:<10}  {:<7}  {:<26}  {}",
            k.id,
            k.prefix,
            k.owner,
            scopes,
            if k.active { "yes" } else { "no" },
            k.created_at,
            k.name.unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn revoke(config: Option<&Path>, id: &str) -> anyhow::Result<()> {
    let db = database(config).await?;
    keys::revoke(&db, id).await.map_err(|e| anyhow::anyhow!(e.message))?;
    println!("revoked {id}");
    Ok(())
}
