//! `/subscriptions`: webhook subscriptions and their deliveries.

use super::bodies::{DeliveryJson, NewSubscription, Page, SubscriptionJson};
use super::{actor, parse_id, ApiError, ApiState, PAGE_MAX};
use crate::model::{now_ns, Actor, Scope};
use crate::store::SubscriptionSpec;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

fn may_manage(actor: &Actor, s: &crate::store::Subscription) -> bool {
    actor.scope == Scope::Admin || (actor.department.is_some() && actor.department == s.department)
}

pub(super) async fn list_subscriptions(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let actor = actor(&state, &headers)?;
    let subscriptions = state.events.store().subscriptions()?;
    let items = subscriptions
        .iter()
        .filter(|s| may_manage(&actor, s))
        .map(SubscriptionJson::listed)
        .collect();
    Ok(Json(Page { items, next: None }).into_response())
}

pub(super) async fn create_subscription(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = actor(&state, &headers)?;
    if actor.scope < Scope::Write {
        state
            .events
            .audit_denied(&actor, "subscribe", None, "read-only token");
        return Err(ApiError::forbidden(
            "a read-only token cannot create subscriptions",
        ));
    }
    let body: NewSubscription =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let url = Some(body.url.as_str())
        .filter(|u| (u.starts_with("http://") || u.starts_with("https://")) && u.len() <= 2048)
        .ok_or_else(|| {
            ApiError::bad_request("field `url`: required, an http(s) URL of at most 2048 bytes")
        })?;
    let secret = match body.secret {
        None => hex::encode(rand::random::<[u8; 32]>()),
        Some(s) if (16..=256).contains(&s.len()) => s,
        Some(_) => {
            return Err(ApiError::bad_request(
                "field `secret`: a string of 16 to 256 bytes",
            ))
        }
    };
    let event_types = body.event_types.unwrap_or_default();
    if event_types.len() > 64 {
        return Err(ApiError::bad_request(
            "field `event_types`: an array of at most 64 strings",
        ));
    }
    // A department's subscription receives what the department sees; only admin may choose.
    let department = match (&actor.scope, body.department) {
        (Scope::Admin, d) => d.or_else(|| actor.department.clone()),
        (_, Some(d)) if Some(d.as_str()) != actor.department.as_deref() => {
            state.events.audit_denied(
                &actor,
                "subscribe",
                None,
                "subscription for another department",
            );
            return Err(ApiError::forbidden(
                "you can only subscribe for your own department",
            ));
        }
        _ => actor.department.clone(),
    };
    if department.is_none() && actor.scope != Scope::Admin {
        return Err(ApiError::forbidden(
            "a token without a department cannot subscribe",
        ));
    }
    // The SSRF guard, last: only an authorised caller makes the hub resolve a name.
    let timeout = std::time::Duration::from_millis(state.events.webhook_config().timeout_ms);
    if let Err(refused) = state.events.egress().check_url(url, timeout).await {
        state.events.audit_denied(
            &actor,
            "subscribe",
            None,
            &format!("webhook url refused: {refused}"),
        );
        return Err(ApiError::unprocessable(
            "refused_url",
            "url",
            refused.to_string(),
        ));
    }
    let sub = state.events.store().create_subscription(SubscriptionSpec {
        url,
        secret: &secret,
        department: department.as_deref(),
        event_types: &event_types,
        created_at_ns: now_ns(),
    })?;
    Ok((StatusCode::CREATED, Json(SubscriptionJson::created(&sub))).into_response())
}

/// The subscription `/subscriptions/{id}` names, found for an actor who may manage it: the
/// caller is authenticated first (401), then the id parsed (400), found (404) and checked to
/// belong to the caller's department (403, audited).
pub(super) struct Managed {
    state: ApiState,
    actor: Actor,
    sub: crate::store::Subscription,
}

impl FromRequestParts<ApiState> for Managed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let actor = actor(state, &parts.headers)?;
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let id = parse_id(&id, "id")?;
        let sub = state
            .events
            .store()
            .subscription(id)?
            .ok_or_else(|| ApiError::not_found(format!("subscription {id} not found")))?;
        if !may_manage(&actor, &sub) {
            state.events.audit_denied(
                &actor,
                "subscription",
                None,
                "subscription of another department",
            );
            return Err(ApiError::forbidden(format!(
                "subscription {id} belongs to another department"
            )));
        }
        Ok(Managed {
            state: state.clone(),
            actor,
            sub,
        })
    }
}

pub(super) async fn get_subscription(m: Managed) -> Response {
    Json(SubscriptionJson::listed(&m.sub)).into_response()
}

pub(super) async fn delete_subscription(m: Managed) -> Result<StatusCode, ApiError> {
    if m.actor.scope < Scope::Write {
        return Err(ApiError::forbidden(
            "a read-only token cannot delete subscriptions",
        ));
    }
    m.state.events.store().delete_subscription(m.sub.id)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_deliveries(m: Managed) -> Result<Json<Page<DeliveryJson>>, ApiError> {
    let items = m
        .state
        .events
        .store()
        .deliveries(m.sub.id, PAGE_MAX)?
        .into_iter()
        .map(|(d, attempts)| DeliveryJson::new(d, attempts))
        .collect();
    Ok(Json(Page { items, next: None }))
}
