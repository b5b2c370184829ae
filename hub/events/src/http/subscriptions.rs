//! `/subscriptions`: webhook subscriptions and their deliveries.

use super::{actor, parse_id, ApiError, ApiState, PAGE_MAX};
use crate::model::{now_ns, rfc3339, Actor, Scope};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value as Json_};

fn subscription_json(s: &crate::store::Subscription, with_secret: bool) -> Json_ {
    let mut v = json!({
        "id": s.id,
        "url": s.url,
        "department": s.department,
        "event_types": s.event_types,
        "created_at": rfc3339(s.created_at_ns),
    });
    if with_secret {
        v["secret"] = json!(s.secret);
    }
    v
}

fn may_manage(actor: &Actor, s: &crate::store::Subscription) -> bool {
    actor.scope == Scope::Admin || (actor.department.is_some() && actor.department == s.department)
}

pub(super) async fn list_subscriptions(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Json_>, ApiError> {
    let actor = actor(&state, &headers)?;
    let items: Vec<Json_> = state
        .events
        .store()
        .subscriptions()?
        .iter()
        .filter(|s| may_manage(&actor, s))
        .map(|s| subscription_json(s, false))
        .collect();
    Ok(Json(json!({ "items": items, "next": null })))
}

pub(super) async fn create_subscription(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let actor = actor(&state, &headers)?;
    if actor.scope < Scope::Write {
        state
            .events
            .audit_denied(&actor, "subscribe", None, "read-only token");
        return Err(ApiError::forbidden(
            "a read-only token cannot create subscriptions",
        ));
    }
    let v: Json_ = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("body: not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| {
        ApiError::bad_request(
            "body: expected {\"url\",\"secret\"?,\"event_types\"?,\"department\"?}",
        )
    })?;
    for k in obj.keys() {
        if !["url", "secret", "event_types", "department"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("field `{k}`: unknown")));
        }
    }
    let url = obj
        .get("url")
        .and_then(|u| u.as_str())
        .filter(|u| (u.starts_with("http://") || u.starts_with("https://")) && u.len() <= 2048)
        .ok_or_else(|| {
            ApiError::bad_request("field `url`: required, an http(s) URL of at most 2048 bytes")
        })?;
    let secret = match obj.get("secret") {
        None | Some(Json_::Null) => hex::encode(rand::random::<[u8; 32]>()),
        Some(Json_::String(s)) if (16..=256).contains(&s.len()) => s.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "field `secret`: a string of 16 to 256 bytes",
            ))
        }
    };
    let event_types: Vec<String> = match obj.get("event_types") {
        None | Some(Json_::Null) => Vec::new(),
        Some(Json_::Array(a)) if a.len() <= 64 => a
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad_request("field `event_types`: strings"))?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "field `event_types`: an array of at most 64 strings",
            ))
        }
    };
    // A department's subscription receives what the department sees; only admin may choose.
    let department = match (&actor.scope, obj.get("department").and_then(|d| d.as_str())) {
        (Scope::Admin, d) => d.map(str::to_string).or_else(|| actor.department.clone()),
        (_, Some(d)) if Some(d) != actor.department.as_deref() => {
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
    let sub = state.events.store().create_subscription(
        url,
        &secret,
        department.as_deref(),
        &event_types,
        now_ns(),
    )?;
    Ok((StatusCode::CREATED, Json(subscription_json(&sub, true))))
}

pub(super) async fn find_subscription(
    state: &ApiState,
    actor: &Actor,
    id: &str,
) -> Result<crate::store::Subscription, ApiError> {
    let id = parse_id(id, "id")?;
    let sub = state
        .events
        .store()
        .subscription(id)?
        .ok_or_else(|| ApiError::not_found(format!("subscription {id} not found")))?;
    if !may_manage(actor, &sub) {
        state.events.audit_denied(
            actor,
            "subscription",
            None,
            "subscription of another department",
        );
        return Err(ApiError::forbidden(format!(
            "subscription {id} belongs to another department"
        )));
    }
    Ok(sub)
}

pub(super) async fn get_subscription(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    let actor = actor(&state, &headers)?;
    let sub = find_subscription(&state, &actor, &id).await?;
    Ok(Json(subscription_json(&sub, false)))
}

pub(super) async fn delete_subscription(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let actor = actor(&state, &headers)?;
    let sub = find_subscription(&state, &actor, &id).await?;
    if actor.scope < Scope::Write {
        return Err(ApiError::forbidden(
            "a read-only token cannot delete subscriptions",
        ));
    }
    state.events.store().delete_subscription(sub.id)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_deliveries(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    let actor = actor(&state, &headers)?;
    let sub = find_subscription(&state, &actor, &id).await?;
    let items: Vec<Json_> = state
        .events
        .store()
        .deliveries(sub.id, PAGE_MAX)?
        .into_iter()
        .map(|(d, attempts)| {
            json!({
                "id": d.id,
                "event_id": d.event_id,
                "version": d.version,
                "cursor": d.cursor,
                "status": d.status,
                "attempts": d.attempts,
                "next_attempt": rfc3339(d.next_attempt_ns),
                "last_status": d.last_status,
                "last_error": d.last_error.as_deref().map(crate::delivery::error_class::shown),
                "delivered_at": d.delivered_at_ns.map(rfc3339),
                "history": attempts.iter().map(|a| json!({
                    "delivery": a.delivery_uid,
                    "at": rfc3339(a.at_ns),
                    "http_status": a.http_status,
                    "error": a.error.as_deref().map(crate::delivery::error_class::shown),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items, "next": null })))
}
