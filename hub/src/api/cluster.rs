//! `GET /api/v1/cluster`: the members of the hub cluster, their health and the edges each owns.

use super::auth::need;
use super::error::ApiError;
use super::AppState;
use crate::cluster::status::ClusterStatus;
use crate::registry::{Principal, Scope};
use axum::extract::State;
use axum::{Extension, Json};

/// Cluster members, their heartbeat, the edges each owns, the leader and orphaned edges (admin
/// scope: it describes the infrastructure). A single-node hub answers `mode: single`.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "hub", security(("bearer" = [])),
    responses((status = 200, body = ClusterStatus), (status = 403, body = super::ErrorBody),
        (status = 503, body = super::ErrorBody)))]
pub(super) async fn cluster_status(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<Json<ClusterStatus>, ApiError> {
    need(&p, Scope::Admin)?;
    let Some(cluster) = state.cluster.clone() else {
        return Ok(Json(ClusterStatus::single()));
    };
    super::blocking(move || {
        ClusterStatus::of(&cluster).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("cluster database: {e}"),
            )
        })
    })
    .await
    .map(Json)
}
