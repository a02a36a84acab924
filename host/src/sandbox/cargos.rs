//! Cargos: the persistent `/workspace` volumes (Shipyard Neo's contract, docs/compatibility.md).
//!
//! Managed cargos are created with (and deleted with) their sandbox; external
//! cargos are created through the API, can be mounted by several sandboxes,
//! and cannot be deleted while a live sandbox uses them.

use serde::Serialize;

use super::SandboxManager;
use crate::db::cargos::Cargo;
use crate::driver::{Labels, labels};
use crate::error::{BayError, BayResult};
use crate::ids::{self, format_ts, now_micros};

/// `CargoResponse` (the owner is never exposed).
#[derive(Debug, Clone, Serialize)]
pub struct CargoView {
    pub id: String,
    pub managed: bool,
    pub managed_by_sandbox_id: Option<String>,
    /// Always `docker_volume`, whatever the driver (clients assert it).
    pub backend: &'static str,
    pub size_limit_mb: i64,
    pub created_at: String,
    pub last_accessed_at: String,
}

impl From<&Cargo> for CargoView {
    fn from(c: &Cargo) -> CargoView {
        CargoView {
            id: c.id.clone(),
            managed: c.is_managed(),
            managed_by_sandbox_id: c.managed_by_sandbox_id.clone(),
            backend: "docker_volume",
            size_limit_mb: c.size_limit_mb,
            created_at: format_ts(c.created_at),
            last_accessed_at: format_ts(c.last_accessed_at),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CargoPage {
    pub items: Vec<CargoView>,
    pub next_cursor: Option<String>,
}

impl SandboxManager {
    /// Creates the volume and the row of a cargo. `managed_by` makes it a
    /// managed cargo of that (future) sandbox; the row is not inserted here
    /// for managed cargos (the sandbox create inserts both in one transaction).
    pub(crate) async fn new_cargo(&self, owner: &str, managed_by: Option<&str>, size_limit_mb: i64) -> BayResult<Cargo> {
        let now = now_micros();
        let cargo_id = ids::cargo_id();
        let mut l = Labels::new();
        l.insert(labels::MANAGED.into(), managed_by.is_some().to_string());
        l.insert(labels::OWNER.into(), owner.to_owned());
        l.insert(labels::CARGO_ID.into(), cargo_id.clone());
        l.insert(labels::INSTANCE_ID.into(), self.instance_id.clone());
        if let Some(sandbox_id) = managed_by {
            l.insert(labels::SANDBOX_ID.into(), sandbox_id.to_owned());
        }
        // Who is creating it: the row follows the volume, so a process that
        // dies in between leaves a volume without a row (`reconcile.rs`).
        let replica = self.cluster.replica_id();
        if replica.len() <= 63 && replica.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            l.insert(labels::REPLICA.into(), replica.to_owned());
        }
        let driver_ref = self
            .driver
            .create_volume(&format!("bay-cargo-{cargo_id}"), &l)
            .await
            .map_err(|e| BayError::internal(format!("cannot create the cargo volume: {e}")))?;
        Ok(Cargo {
            id: cargo_id,
            owner: owner.to_owned(),
            backend: "docker_volume".into(),
            driver_ref,
            managed: managed_by.is_some() as i64,
            managed_by_sandbox_id: managed_by.map(str::to_owned),
            size_limit_mb,
            created_at: now,
            last_accessed_at: now,
        })
    }

    /// `POST /v1/cargos`: an external cargo.
    pub async fn create_cargo(&self, owner: &str, size_limit_mb: Option<i64>) -> BayResult<CargoView> {
        let size = size_limit_mb.unwrap_or(self.config.cargo.default_size_limit_mb);
        // Held until the cargo row is stored.
        let _admission = self.quotas.admit_cargo(&self.db, owner, size).await?;
        let cargo = self.new_cargo(owner, None, size).await?;
        if let Err(e) = self.db.insert_cargo(self.db.pool(), &cargo).await {
            let _ = self.driver.delete_volume(&cargo.driver_ref).await;
            return Err(e.into());
        }
        tracing::info!(cargo_id = %cargo.id, owner, "cargo created");
        Ok(CargoView::from(&cargo))
    }

    pub async fn get_cargo(&self, owner: &str, id: &str) -> BayResult<CargoView> {
        let cargo = self.db.cargo_for_owner(id, owner).await?.ok_or_else(|| cargo_not_found(id))?;
        Ok(CargoView::from(&cargo))
    }

    /// `GET /v1/cargos`: `managed` omitted lists external cargos only.
    pub async fn list_cargos(&self, owner: &str, limit: usize, cursor: Option<&str>, managed: bool) -> BayResult<CargoPage> {
        let mut rows = self.db.list_cargos(owner, managed, cursor, limit as i64 + 1).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more { rows.last().map(|c| c.id.clone()) } else { None };
        Ok(CargoPage { items: rows.iter().map(CargoView::from).collect(), next_cursor })
    }

    /// `DELETE /v1/cargos/{id}`, refused while a live sandbox uses it.
    pub async fn delete_cargo(&self, owner: &str, id: &str) -> BayResult<()> {
        let cargo = self.db.cargo_for_owner(id, owner).await?.ok_or_else(|| cargo_not_found(id))?;
        if cargo.is_managed() {
            if let Some(manager) = &cargo.managed_by_sandbox_id
                && self.db.sandbox(manager).await?.is_some()
            {
                return Err(BayError::conflict(format!("Cargo {id} is managed by sandbox {manager}; delete the sandbox instead"))
                    .with("managed_by_sandbox_id", manager.as_str()));
            }
        } else {
            let active = self.db.sandboxes_using_cargo(id).await?;
            if !active.is_empty() {
                return Err(BayError::conflict(format!("Cargo {id} is in use by {} sandbox(es)", active.len())).with("active_sandbox_ids", active));
            }
        }
        self.driver.delete_volume(&cargo.driver_ref).await.map_err(|e| BayError::internal(format!("cannot delete the cargo volume: {e}")))?;
        self.db.delete_cargo_row(id).await?;
        tracing::info!(cargo_id = %id, owner, "cargo deleted");
        Ok(())
    }
}

fn cargo_not_found(id: &str) -> BayError {
    BayError::not_found(format!("Cargo not found: {}", crate::error::echo(id)))
}
