//! The HTTP API under `/api/v1` (contract in `docs/contracts.md` "Public interfaces"), `/metrics`
//! and `/api/v1/openapi.json` generated from these handlers with utoipa.
//!
//! Every route but `health` and `openapi.json` needs `Authorization: Bearer TOKEN` (401
//! without a valid one, 403 without the scope). Errors are `{"error":{"code","message"}}`.
//! Bodies and query strings are bounded; bad input is a 4xx naming the field, never a 5xx.
//! `/metrics` is open so a Prometheus scraper needs no token (it reveals counts only).

pub mod auth;
mod cluster;
mod components;
pub mod edge_config;
pub mod error;
mod events_doc;
pub mod metrics;
mod readings;
pub mod report_range;
pub mod stream_cap;
pub mod time;

use crate::config::HttpConfig;
use crate::registry::RegistryError;
use crate::registry::{
    Component, ComponentInput, ComponentStatus, Department, Edge, GridCell, Page, Principal,
    RegistryAdmin, RegistryStats, Scope, Sensor, SensorInput, UnassignedSensor,
};
use crate::timeseries::TimeSeriesQuery;
use auth::need;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
pub use components::ComponentQuery;
use components::{
    check_component_write, create_component, delete_component, get_component, list_components,
    put_component,
};
use error::{rejection, ApiError, ErrorBody};
use metrics::{ApiMetrics, MetricsSource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<dyn RegistryAdmin>,
    /// `None` when no time-series store is running: readings answer 503.
    pub readings: Option<Arc<dyn TimeSeriesQuery>>,
    /// The configured admin token (config `admin_token` or `WANGGE_ADMIN_TOKEN`), if any.
    pub admin_token: Option<Arc<str>>,
    /// Bounds on what a client may send or ask for (`[http]` of hub.toml).
    pub limits: Arc<HttpConfig>,
    pub metrics: Arc<ApiMetrics>,
    /// Other stages' metrics (ingest, storage), appended to `/metrics`.
    pub metric_sources: Vec<Arc<dyn MetricsSource>>,
    pub started: std::time::Instant,
    /// The hub's supervised parts; `health` answers 503 while any is down. `None`: no parts.
    pub supervisor: Option<crate::supervise::Supervisor>,
    /// This hub as a cluster member; `None` on a single node.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Asks the configuration delivery to publish an edge's new version now; `None`: no
    /// delivery task (its periodic pass, if any, still publishes).
    pub fleet: Option<crate::fleet::Kick>,
}

impl AppState {
    pub fn new(registry: Arc<dyn RegistryAdmin>) -> AppState {
        AppState {
            registry,
            readings: None,
            admin_token: None,
            limits: Arc::new(HttpConfig::default()),
            metrics: Arc::new(ApiMetrics::default()),
            metric_sources: Vec::new(),
            started: std::time::Instant::now(),
            supervisor: None,
            cluster: None,
            fleet: None,
        }
    }
}

impl AppState {
    /// Runs `f` with the registry (synchronous SQLite) off the async workers.
    async fn with_registry<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn RegistryAdmin) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let reg = self.registry.clone();
        blocking(move || f(reg.as_ref())).await
    }
}

/// Runs registry calls (synchronous SQLite) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/components", get(list_components).post(create_component))
        .route(
            "/components/{id}",
            get(get_component)
                .put(put_component)
                .delete(delete_component),
        )
        .route(
            "/components/{id}/readings",
            get(readings::component_readings),
        )
        .route("/edges", get(list_edges))
        .route("/stats", get(stats))
        .route("/sensors/unassigned", get(list_unassigned))
        .route("/sensors/{id}", get(get_sensor).put(put_sensor))
        .route("/grid_cells", get(list_grid_cells))
        .route("/departments", get(list_departments))
        .route("/cluster", get(cluster::cluster_status))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let api = Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_json))
        .merge(protected);
    // A configuration document may be larger than the other bodies: its own bound.
    let config_body = edge_config::CONFIG_BODY_BYTES_MAX.max(state.limits.body_bytes_max);
    let edge_config = Router::new()
        .route(
            "/api/v1/edges/{id}/config",
            get(edge_config::get_edge_config).put(edge_config::put_edge_config),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(config_body))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(config_body));
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(state.limits.body_bytes_max))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            state.limits.body_bytes_max,
        ))
        .merge(edge_config)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), bound_query))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// Counts every response, and rewrites the few plain-text errors produced below the handlers
/// (tower-http's 413, axum's 405) into the API's JSON error shape.
async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    state.metrics.count_response(status.as_u16());
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let (code, message) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => (
                "too_large",
                format!("request body exceeds {} bytes", state.limits.body_bytes_max),
            ),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "method not allowed on this path".to_string(),
            ),
            s => (
                "invalid_request",
                s.canonical_reason().unwrap_or("error").to_string(),
            ),
        };
        return ApiError::new(status, code, message).into_response();
    }
    resp
}

async fn bound_query(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let len = req.uri().query().map_or(0, str::len);
    if len > state.limits.query_bytes_max {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "too_large",
            format!(
                "query string is {len} bytes, at most {} accepted",
                state.limits.query_bytes_max
            ),
        ));
    }
    Ok(next.run(req).await)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no route {} {}", req.method(), req.uri().path()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` (with status 503) while a part of the hub is down.
    pub status: String,
    /// The parts that are down (e.g. `ingest`, `webhooks`); empty when `ok`.
    pub failing: Vec<String>,
    pub version: String,
    pub uptime_s: u64,
}

/// Liveness and readiness; needs no token. 503 `degraded` names the failing parts, so a load
/// balancer or an operator's probe notices a hub that answers HTTP but no longer ingests.
#[utoipa::path(get, path = "/api/v1/health", tag = "hub",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let failing = state
        .supervisor
        .as_ref()
        .map(|s| s.failing())
        .unwrap_or_default();
    let (code, status) = if failing.is_empty() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    };
    (
        code,
        Json(Health {
            status: status.to_string(),
            failing,
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s: state.started.elapsed().as_secs(),
        }),
    )
}

/// The OpenAPI document of this API; needs no token.
async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_pretty_json().unwrap_or_default(),
    )
        .into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&state.metric_sources),
    )
        .into_response()
}

/// Query of the other lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

fn page_limit(state: &AppState, limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(state.limits.page_limit_default),
        Some(0) => Err(ApiError::field("limit", "must be at least 1")),
        Some(n) if n > state.limits.page_limit_max => Err(ApiError::field(
            "limit",
            format!("{n} exceeds the maximum {}", state.limits.page_limit_max),
        )),
        Some(n) => Ok(n),
    }
}

fn bounded_text(name: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    const TEXT_BYTES_MAX: usize = 128;
    match v {
        Some(s) if s.len() > TEXT_BYTES_MAX => Err(ApiError::field(
            name,
            format!("longer than {TEXT_BYTES_MAX} bytes"),
        )),
        other => Ok(other.filter(|s| !s.is_empty())),
    }
}

/// Reads one page of a registry list: (registry, after this cursor, at most this many).
type ListPage<T> = fn(&dyn RegistryAdmin, Option<&str>, usize) -> Result<Page<T>, RegistryError>;

/// The request of a registry list: its `?cursor=&limit=` ([`PageQuery`]), checked.
struct ListRequest {
    state: AppState,
    after: Option<String>,
    limit: usize,
}

impl FromRequestParts<AppState> for ListRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Query(q) = Query::<PageQuery>::from_request_parts(parts, state)
            .await
            .map_err(|e| rejection(e.status(), e.body_text()))?;
        Ok(ListRequest {
            limit: page_limit(state, q.limit)?,
            after: bounded_text("cursor", q.cursor)?,
            state: state.clone(),
        })
    }
}

impl ListRequest {
    /// The page, read by `list` on the blocking pool.
    async fn read<T: Send + 'static>(self, list: ListPage<T>) -> Result<Json<Page<T>>, ApiError> {
        let (after, limit) = (self.after, self.limit);
        self.state
            .with_registry(move |reg| Ok(list(reg, after.as_deref(), limit)?))
            .await
            .map(Json)
    }
}

/// One registry item by id (`get`), 404 "`what` `id`" if there is none.
async fn registry_get<T: Send + 'static>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    what: &'static str,
    get: impl FnOnce(&dyn RegistryAdmin, &str) -> Result<Option<T>, RegistryError> + Send + 'static,
) -> Result<Json<T>, ApiError> {
    state
        .with_registry(move |reg| {
            get(reg, &id)?.ok_or_else(|| ApiError::not_found(format!("{what} {id}")))
        })
        .await
        .map(Json)
}

/// 201 with the item if the write created it, else 200.
fn created_or_ok<T>((item, created): (T, bool)) -> (StatusCode, Json<T>) {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(item))
}

/// The JSON body of a write (`POST`, `PUT`) with its caller, who needs the write scope: 403
/// without it, before the body is read; then 400 for a body that is not a `T`.
struct WriteBody<T>(Principal, T);

impl<T: DeserializeOwned> FromRequest<AppState> for WriteBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let p = req
            .extensions()
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::internal("no principal on an authenticated route"))?;
        need(&p, Scope::Write)?;
        let Json(body) = Json::<T>::from_request(req, state)
            .await
            .map_err(|e| rejection(e.status(), e.body_text()))?;
        Ok(WriteBody(p, body))
    }
}

/// Edge boxes: online, last seen, version, reported backlog.
#[utoipa::path(get, path = "/api/v1/edges", tag = "edges", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<Edge>), (status = 401, body = ErrorBody)))]
async fn list_edges(list: ListRequest) -> Result<Json<Page<Edge>>, ApiError> {
    list.read(<dyn RegistryAdmin>::list_edges).await
}

/// Sensors that sent readings but are not registered, for an operator to assign.
#[utoipa::path(get, path = "/api/v1/sensors/unassigned", tag = "sensors", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<UnassignedSensor>)))]
async fn list_unassigned(list: ListRequest) -> Result<Json<Page<UnassignedSensor>>, ApiError> {
    list.read(<dyn RegistryAdmin>::list_unassigned_sensors)
        .await
}

/// One registered sensor.
#[utoipa::path(get, path = "/api/v1/sensors/{id}", tag = "sensors",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Sensor), (status = 404, body = ErrorBody)))]
async fn get_sensor(state: State<AppState>, id: Path<String>) -> Result<Json<Sensor>, ApiError> {
    registry_get(state, id, "sensor", |reg, id| reg.sensor(id)).await
}

/// Registers a sensor or attaches it to a component (e.g. one listed in `sensors/unassigned`).
#[utoipa::path(put, path = "/api/v1/sensors/{id}", tag = "sensors", request_body = SensorInput,
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Sensor), (status = 201, body = Sensor),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn put_sensor(
    State(state): State<AppState>,
    Path(id): Path<String>,
    WriteBody(p, input): WriteBody<SensorInput>,
) -> Result<(StatusCode, Json<Sensor>), ApiError> {
    let put = state.with_registry(move |reg| {
        // A department attaches sensors only to, and moves them only from, its own components.
        let current = reg.sensor(&id)?.and_then(|s| s.component_id);
        for c in current.iter().chain(input.component_id.iter()) {
            check_component_write(reg, &p, c, None)?;
        }
        Ok(reg.put_sensor(&id, &input)?)
    });
    Ok(created_or_ok(put.await?))
}

/// Grid cells (网格) with their bounding boxes, for maps and filters.
#[utoipa::path(get, path = "/api/v1/grid_cells", tag = "registry", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<GridCell>)))]
async fn list_grid_cells(list: ListRequest) -> Result<Json<Page<GridCell>>, ApiError> {
    list.read(<dyn RegistryAdmin>::list_grid_cells).await
}

/// Departments (部门).
#[utoipa::path(get, path = "/api/v1/departments", tag = "registry", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<Department>)))]
async fn list_departments(list: ListRequest) -> Result<Json<Page<Department>>, ApiError> {
    list.read(<dyn RegistryAdmin>::list_departments).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub registry: RegistryStats,
    pub uptime_s: u64,
}

/// Registry counts (components by status and type, sensors, edges online).
#[utoipa::path(get, path = "/api/v1/stats", tag = "hub", security(("bearer" = [])),
    responses((status = 200, body = Stats)))]
async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    let registry = state.with_registry(|reg| Ok(reg.stats()?)).await?;
    Ok(Json(Stats {
        registry,
        uptime_s: state.started.elapsed().as_secs(),
    }))
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Wangge hub API", description = "Registry, readings and edges of a Wangge hub."),
    paths(
        health,
        cluster::cluster_status,
        components::list_components,
        components::create_component,
        components::get_component,
        components::put_component,
        components::delete_component,
        readings::component_readings,
        list_edges,
        edge_config::get_edge_config,
        edge_config::put_edge_config,
        list_unassigned,
        get_sensor,
        put_sensor,
        list_grid_cells,
        list_departments,
        stats,
        events_doc::list_events,
        events_doc::get_event,
        events_doc::transition,
        events_doc::upload_attachment,
        events_doc::list_attachments,
        events_doc::get_attachment,
        events_doc::delete_attachment,
        events_doc::stream,
        events_doc::list_subscriptions,
        events_doc::create_subscription,
        events_doc::get_subscription,
        events_doc::delete_subscription,
        events_doc::list_deliveries,
        events_doc::evaluation,
        events_doc::evaluation_csv,
        events_doc::evaluation_xlsx,
        events_doc::audit,
        events_doc::announce_outage,
        events_doc::list_outages,
        events_doc::delete_outage
    ),
    components(schemas(
        crate::cluster::status::ClusterStatus,
        Component, ComponentInput, ComponentStatus, Page<Component>, Edge, Page<Edge>,
        UnassignedSensor, Page<UnassignedSensor>, Sensor, SensorInput, GridCell, Page<GridCell>, Department,
        Page<Department>,
        RegistryStats, Stats, Health, ErrorBody,
        edge_config::EdgeConfigJson, edge_config::DesiredJson, edge_config::AppliedJson,
        edge_config::EdgeConfigInput,
        error::ErrorDetail, readings::Readings, readings::PointOut, wangge_events::model::EventJson,
        wangge_events::model::TriggerJson, wangge_events::model::Severity,
        wangge_events::model::Status, wangge_events::model::HistoryEntry,
        wangge_events::http::bodies::Page<wangge_events::model::EventJson>,
        wangge_events::http::bodies::EventDetail, wangge_events::http::bodies::TransitionBody,
        wangge_events::http::bodies::NewSubscription, wangge_events::http::bodies::SubscriptionJson,
        wangge_events::http::bodies::DeliveryJson, wangge_events::http::bodies::AttemptJson
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;
