//! The API's errors and their JSON body `{"error":{"code","message"}}`.

use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An API error with its JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    allowed: Option<Vec<&'static str>>,
    /// The request field at fault, as the hub's own errors name it.
    field: Option<&'static str>,
}

impl ApiError {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            allowed: None,
            field: None,
        }
    }
    /// 422: well-formed, but the value is refused (a forbidden webhook target, an unknown
    /// department), naming the field.
    pub(super) fn unprocessable(
        code: &'static str,
        field: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        let message = format!("field `{field}`: {}", message.into());
        ApiError::with_field(StatusCode::UNPROCESSABLE_ENTITY, code, field, message)
    }
    /// An error about one request field; `message` already names it.
    pub(super) fn with_field(
        status: StatusCode,
        code: &'static str,
        field: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            field: Some(field),
            ..ApiError::new(status, code, message)
        }
    }
    pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub(super) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub(super) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({"code": self.code, "message": self.message});
        if let Some(a) = self.allowed {
            err["allowed"] = json!(a);
        }
        if let Some(f) = self.field {
            err["field"] = json!(f);
        }
        (self.status, Json(json!({ "error": err }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(id) => ApiError::not_found(format!("event {id} not found")),
            StoreError::InvalidTransition { ref allowed, .. } => ApiError {
                status: StatusCode::CONFLICT,
                code: "invalid_transition",
                message: e.to_string(),
                allowed: Some(allowed.clone()),
                field: None,
            },
            StoreError::MissingDepartment => {
                ApiError::bad_request("field `department`: dispatch needs a department")
            }
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::AttachmentNotFound(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("attachment {id} not found"),
            ),
            StoreError::Attachment(m) => {
                ApiError::unprocessable("attachment_unusable", "attachments", m)
            }
            StoreError::EvidenceRequired { .. } => {
                ApiError::unprocessable("evidence_required", "attachments", e.to_string())
            }
            StoreError::Limit(m) => ApiError::new(StatusCode::CONFLICT, "limit", m),
            other => {
                tracing::error!(error = %other, "events store");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "events store error",
                )
            }
        }
    }
}
