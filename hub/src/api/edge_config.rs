//! `/edges/{id}/config`: an edge's desired configuration (configuration from the hub, issue 14).
//!
//! Who: the admin token, or a department token whose department maintains every component
//! behind the edge (the component of every sensor registered to it; an edge without sensors is
//! the admin's only) — with the write scope to `PUT`. Everyone else gets 404, the same as for an
//! unknown edge: the document may hold site-broker passwords, and whether an edge has one is
//! not theirs to learn. The document is never logged.

use super::auth::need;
use super::error::{rejection, ApiError, ErrorBody};
use super::AppState;
use crate::fleet::store::store_version;
use crate::registry::{
    format_ts, now_ns, EdgeConfigState, NewConfig, Principal, RegistryAdmin, Scope,
};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Largest body of a `PUT`: a document of `CONFIG_DOCUMENT_BYTES_MAX` JSON-escaped, with room.
pub const CONFIG_BODY_BYTES_MAX: usize =
    2 * protocol::edge_config::CONFIG_DOCUMENT_BYTES_MAX + 4096;

/// An edge's desired configuration and what the edge last reported.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EdgeConfigJson {
    pub edge_id: String,
    /// The newest version stored; `null` if the hub never set one (the edge runs its own file).
    pub desired: Option<DesiredJson>,
    /// The edge's newest report; `null` before its first.
    pub applied: Option<AppliedJson>,
    /// True when the edge reports running the newest version (same version and hash), or when
    /// there is no desired version.
    pub in_sync: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DesiredJson {
    /// 1, 2, … per edge.
    pub version: u64,
    /// `sha256:` + hex of `document`.
    pub hash: String,
    /// The TOML document.
    pub document: String,
    pub created_at: String,
    /// The token id that stored it (`admin`, `cli`, or an issued token's id).
    pub created_by: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AppliedJson {
    /// The version the edge runs on (0: only its own file).
    pub applied_version: u64,
    pub applied_hash: String,
    /// The newest version it saw.
    pub version: u64,
    /// What it did with `version`: `applied`, `refused` or `rolled_back`.
    pub outcome: String,
    /// Why it refused or rolled back, naming the field.
    pub error: Option<String>,
    /// When the edge made the report (its clock).
    pub reported_at: String,
}

/// Body of `PUT edges/{id}/config`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfigInput {
    /// The TOML document: sections `edge` (only `sensors`), `hub` (only `keepalive_s`,
    /// `ca_pem`), `mqtt`, `site_broker`, `serial`, `modbus`, `buffer`, `uplink`, `validate`,
    /// `calibration`; never the edge's identity.
    pub document: String,
    /// The version this change was made on (0: none yet); if given and not the current one,
    /// 409.
    pub base_version: Option<u64>,
}

impl EdgeConfigJson {
    pub fn of(edge_id: &str, s: EdgeConfigState) -> EdgeConfigJson {
        let in_sync = match (&s.desired, &s.applied) {
            (None, _) => true,
            (Some(d), Some(a)) => a.applied_version == d.version && a.applied_hash == d.hash,
            (Some(_), None) => false,
        };
        EdgeConfigJson {
            edge_id: edge_id.to_string(),
            desired: s.desired.map(|d| DesiredJson {
                version: d.version,
                hash: d.hash,
                document: d.document,
                created_at: format_ts(d.created_ns),
                created_by: d.created_by,
            }),
            applied: s.applied.map(|a| AppliedJson {
                applied_version: a.applied_version,
                applied_hash: a.applied_hash,
                version: a.version,
                outcome: a.outcome,
                error: a.error,
                reported_at: format_ts(a.reported_ns),
            }),
            in_sync,
        }
    }
}

/// 404 ("edge {id}") unless `p` may see and change edge `id`'s configuration (module doc).
fn may_manage(reg: &dyn RegistryAdmin, p: &Principal, id: &str) -> Result<(), ApiError> {
    let unknown = || ApiError::not_found(format!("edge {id}"));
    if p.scope == Scope::Admin {
        return Ok(());
    }
    let Some(dept) = p.department.as_deref() else {
        return Err(unknown());
    };
    let maintainers = reg.edge_sensor_maintainers(id)?;
    if maintainers.is_empty() || maintainers.iter().any(|m| m.as_deref() != Some(dept)) {
        return Err(unknown());
    }
    Ok(())
}

/// The edge's state, for who may manage it.
fn read(reg: &dyn RegistryAdmin, p: &Principal, id: &str) -> Result<EdgeConfigJson, ApiError> {
    let state = reg
        .edge_config(id)?
        .ok_or_else(|| ApiError::not_found(format!("edge {id}")))?;
    may_manage(reg, p, id)?;
    Ok(EdgeConfigJson::of(id, state))
}

/// An edge's desired configuration (newest version) and its newest report.
#[utoipa::path(get, path = "/api/v1/edges/{id}/config", tag = "edges",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = EdgeConfigJson), (status = 404, body = ErrorBody)))]
pub(super) async fn get_edge_config(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<EdgeConfigJson>, ApiError> {
    state
        .with_registry(move |reg| read(reg, &p, &id))
        .await
        .map(Json)
}

/// Stores the next version of an edge's desired configuration; the hub delivers it sealed to
/// the edge at once and until the edge reports it. 201 for the edge's first version.
#[utoipa::path(put, path = "/api/v1/edges/{id}/config", tag = "edges",
    request_body = EdgeConfigInput, params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = EdgeConfigJson), (status = 201, body = EdgeConfigJson),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn put_edge_config(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<EdgeConfigJson>), ApiError> {
    let p = req
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::internal("no principal on an authenticated route"))?;
    // Who may, before the body is read: 404 for who may not see the edge, 403 without write.
    let (who, edge) = (p.clone(), id.clone());
    state
        .with_registry(move |reg| read(reg, &who, &edge).map(|_| ()))
        .await?;
    need(&p, Scope::Write)?;
    let Json(input) = Json::<EdgeConfigInput>::from_request(req, &state)
        .await
        .map_err(|e| rejection(e.status(), e.body_text()))?;
    let (edge, by) = (id.clone(), p.token_id.clone());
    let (created, json) = state
        .with_registry(move |reg| {
            let (stored, created) = store_version(
                reg,
                &NewConfig {
                    edge_id: &edge,
                    document: &input.document,
                    base_version: input.base_version,
                    created_by: &by,
                    created_ns: now_ns(),
                },
            )?;
            tracing::info!(edge_id = %edge, version = stored.version, hash = %stored.hash,
                created_by = %by, "edge configuration stored");
            let state = reg.edge_config(&edge)?.unwrap_or_default();
            Ok((created, EdgeConfigJson::of(&edge, state)))
        })
        .await?;
    if let Some(kick) = &state.fleet {
        kick.edge(&id);
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json)))
}
