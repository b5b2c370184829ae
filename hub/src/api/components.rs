//! `/components`: list, get, create, replace, delete; who may change what.

use super::auth::need;
use super::error::{rejection, ApiError, ErrorBody};
use super::{bounded_text, created_or_ok, page_limit, registry_get, AppState, WriteBody};
use crate::registry::{
    Component, ComponentFilter, ComponentInput, ComponentStatus, Page, Principal, RegistryAdmin,
    Scope,
};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::IntoParams;

/// Query of `GET components`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ComponentQuery {
    /// Component type, e.g. `manhole_cover`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub component_type: Option<String>,
    /// Grid cell id.
    pub grid: Option<String>,
    /// Owner or maintainer department id.
    pub department: Option<String>,
    /// normal | alarm | offline | maintenance
    pub status: Option<String>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// Components, filtered, ordered by id, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/components", tag = "components", params(ComponentQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<Component>), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub(super) async fn list_components(
    State(state): State<AppState>,
    q: Result<Query<ComponentQuery>, QueryRejection>,
) -> Result<Json<Page<Component>>, ApiError> {
    let Query(q) = q.map_err(|e| rejection(e.status(), e.body_text()))?;
    let status = match bounded_text("status", q.status)? {
        None => None,
        Some(s) => Some(ComponentStatus::from_name(&s).ok_or_else(|| {
            ApiError::field(
                "status",
                format!("{s:?} is not one of normal, alarm, offline, maintenance"),
            )
        })?),
    };
    let filter = ComponentFilter {
        component_type: bounded_text("type", q.component_type)?,
        grid_cell: bounded_text("grid", q.grid)?,
        department: bounded_text("department", q.department)?,
        status,
        after: bounded_text("cursor", q.cursor)?,
        limit: page_limit(&state, q.limit)?,
    };
    state
        .with_registry(move |reg| Ok(reg.list_components(&filter)?))
        .await
        .map(Json)
}

/// One component.
#[utoipa::path(get, path = "/api/v1/components/{id}", tag = "components",
    params(("id" = String, Path, description = "16-digit component code")),
    security(("bearer" = [])),
    responses((status = 200, body = Component), (status = 404, body = ErrorBody)))]
pub(super) async fn get_component(
    state: State<AppState>,
    id: Path<String>,
) -> Result<Json<Component>, ApiError> {
    registry_get(state, id, "component", |reg, id| reg.component(id)).await
}

/// A department's write token may change only components its department owns or maintains
/// (before and after the change); admin tokens may change any.
fn may_write(p: &Principal, c: &Component) -> bool {
    p.scope == Scope::Admin
        || p.department.as_deref().is_some_and(|d| {
            c.owner_department.as_deref() == Some(d)
                || c.maintainer_department.as_deref() == Some(d)
        })
}

fn not_yours(p: &Principal, id: &str) -> ApiError {
    ApiError::forbidden(format!(
        "component {id} is neither owned nor maintained by department {}",
        p.department.as_deref().unwrap_or("(none)")
    ))
}

/// Checks a write on component `id` (its current state, if any, and the `input` it would get).
///
/// Besides "owned or maintained, before and after", a department token may not move
/// responsibility: the owner and maintainer departments decide who sees the component's events
/// (sharing) and who may change it, so a department that could set them could hand its
/// components' events to anyone, or claim another department's component by naming itself
/// maintainer. Hence, for a token that is not admin:
/// - replacing a component keeps its owner and maintainer departments (403 otherwise);
/// - creating one (POST, or PUT of a new id) requires the department to be both its owner and
///   its maintainer (after the class defaults apply); assigning it to another department is an
///   admin act.
pub(super) fn check_component_write(
    reg: &dyn RegistryAdmin,
    p: &Principal,
    id: &str,
    input: Option<&ComponentInput>,
) -> Result<(), ApiError> {
    if p.scope == Scope::Admin {
        return Ok(());
    }
    let existing = reg.component(id)?;
    if let Some(existing) = &existing {
        if !may_write(p, existing) {
            return Err(not_yours(p, id));
        }
    }
    let Some(input) = input else {
        return Ok(());
    };
    let after = reg.preview_component(id, input)?;
    match &existing {
        Some(before) => {
            if before.owner_department != after.owner_department
                || before.maintainer_department != after.maintainer_department
            {
                return Err(ApiError::forbidden(format!(
                    "component {id}: changing its owner or maintainer department needs an admin token \
                     (owner {} → {}, maintainer {} → {})",
                    before.owner_department.as_deref().unwrap_or("none"),
                    after.owner_department.as_deref().unwrap_or("none"),
                    before.maintainer_department.as_deref().unwrap_or("none"),
                    after.maintainer_department.as_deref().unwrap_or("none"),
                )));
            }
        }
        None => {
            let d = p.department.as_deref();
            if d.is_none()
                || after.owner_department.as_deref() != d
                || after.maintainer_department.as_deref() != d
            {
                return Err(ApiError::forbidden(format!(
                    "component {id}: department {} may create only components it both owns and \
                     maintains (this one: owner {}, maintainer {}); assigning one to another \
                     department needs an admin token",
                    d.unwrap_or("(none)"),
                    after.owner_department.as_deref().unwrap_or("none"),
                    after.maintainer_department.as_deref().unwrap_or("none"),
                )));
            }
        }
    }
    Ok(())
}

/// Registers a component. Its code is validated (16 digits, known region, known class);
/// omitted type/owner/maintainer come from its class.
#[utoipa::path(post, path = "/api/v1/components", tag = "components", request_body = ComponentInput,
    security(("bearer" = [])),
    responses((status = 201, body = Component), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create_component(
    State(state): State<AppState>,
    WriteBody(p, input): WriteBody<ComponentInput>,
) -> Result<(StatusCode, Json<Component>), ApiError> {
    let created = state.with_registry(move |reg| {
        if let Some(id) = input.id.as_deref().filter(|i| !i.trim().is_empty()) {
            check_component_write(reg, &p, id.trim(), Some(&input))?;
        }
        Ok(reg.create_component(&input)?)
    });
    Ok((StatusCode::CREATED, Json(created.await?)))
}

/// Creates or replaces a component.
#[utoipa::path(put, path = "/api/v1/components/{id}", tag = "components", request_body = ComponentInput,
    params(("id" = String, Path, description = "16-digit component code")),
    security(("bearer" = [])),
    responses((status = 200, body = Component), (status = 201, body = Component),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn put_component(
    State(state): State<AppState>,
    Path(id): Path<String>,
    WriteBody(p, input): WriteBody<ComponentInput>,
) -> Result<(StatusCode, Json<Component>), ApiError> {
    let put = state.with_registry(move |reg| {
        check_component_write(reg, &p, &id, Some(&input))?;
        Ok(reg.put_component(&id, &input)?)
    });
    Ok(created_or_ok(put.await?))
}

/// Removes a component; its sensors stay registered, unattached.
#[utoipa::path(delete, path = "/api/v1/components/{id}", tag = "components",
    params(("id" = String, Path, description = "16-digit component code")),
    security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_component(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    need(&p, Scope::Write)?;
    state
        .with_registry(move |reg| {
            check_component_write(reg, &p, &id, None)?;
            if reg.delete_component(&id)? {
                Ok(StatusCode::NO_CONTENT)
            } else {
                Err(ApiError::not_found(format!("component {id}")))
            }
        })
        .await
}
