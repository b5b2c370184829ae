//! Bearer tokens: every route but `health` and `openapi.json` needs one.
//! Missing or invalid → 401; valid but without the needed scope → 403.

use super::error::ApiError;
use super::AppState;
use crate::registry::{Principal, Scope};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

/// Longest bearer token looked at; anything longer is refused unread.
const TOKEN_BYTES_MAX: usize = 256;

/// Constant-time equality for the configured admin token.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Middleware: resolves the caller and stores the [`Principal`] in the request's extensions.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| {
            state.metrics.count_auth_failure();
            ApiError::unauthorized("missing Authorization: Bearer TOKEN header")
        })?
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not ASCII"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= TOKEN_BYTES_MAX)
        .ok_or_else(|| {
            state.metrics.count_auth_failure();
            ApiError::unauthorized("Authorization must be `Bearer TOKEN`")
        })?
        .to_string();
    let principal = if state
        .admin_token
        .as_deref()
        .is_some_and(|a| same(a, &token))
    {
        Some(Principal {
            token_id: "admin".to_string(),
            department: None,
            scope: Scope::Admin,
        })
    } else {
        let reg = state.registry.clone();
        tokio::task::spawn_blocking(move || reg.verify_token(&token))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??
    };
    let Some(principal) = principal else {
        state.metrics.count_auth_failure();
        return Err(ApiError::unauthorized("invalid or revoked token"));
    };
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// 403 unless `p` has at least `needed`.
pub fn need(p: &Principal, needed: Scope) -> Result<(), ApiError> {
    if p.scope >= needed {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "token {} has scope {}, this needs {}",
            p.token_id,
            p.scope.name(),
            needed.name()
        )))
    }
}
