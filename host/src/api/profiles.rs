//! `GET /v1/profiles` (Shipyard Neo's contract, docs/compatibility.md). Unauthenticated, as in Shipyard Neo.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::parse_query;
use crate::config::{ProfileConfig, Resources};
use crate::error::BayResult;

#[derive(Deserialize, Default)]
struct ProfilesQuery {
    #[serde(default)]
    detail: bool,
}

#[derive(Serialize)]
struct ContainerItem {
    name: String,
    runtime_type: String,
    capabilities: Vec<String>,
    resources: Resources,
}

#[derive(Serialize)]
pub struct ProfileItem {
    id: String,
    image: String,
    resources: Resources,
    capabilities: Vec<String>,
    idle_timeout: i64,
    description: Option<String>,
    containers: Option<Vec<ContainerItem>>,
}

#[derive(Serialize)]
pub struct ProfileList {
    items: Vec<ProfileItem>,
}

fn item(p: &ProfileConfig, detail: bool) -> ProfileItem {
    let primary = p.primary();
    ProfileItem {
        id: p.id.clone(),
        image: p.image.clone().unwrap_or_else(|| primary.image.clone()),
        resources: p.resources.clone().unwrap_or_else(|| primary.resources.clone()),
        capabilities: p.capability_set(),
        idle_timeout: p.idle_timeout,
        description: if detail { p.description.clone() } else { None },
        containers: detail.then(|| {
            p.containers()
                .into_iter()
                .map(|c| {
                    let mut capabilities = c.capabilities.clone();
                    capabilities.sort();
                    ContainerItem { name: c.name, runtime_type: c.runtime_type, capabilities, resources: c.resources }
                })
                .collect()
        }),
    }
}

pub async fn list(State(state): State<AppState>, RawQuery(q): RawQuery) -> BayResult<Json<ProfileList>> {
    let query: ProfilesQuery = parse_query(q.as_deref())?;
    Ok(Json(ProfileList { items: state.sandboxes.profiles().iter().map(|p| item(p, query.detail)).collect() }))
}
