//! At most `http.sse_streams_per_token_max` open SSE streams (`GET /api/v1/events/stream`) per
//! bearer token: one leaked or hostile token cannot hold every connection slot and every
//! outbox reader. Past it: 429 with the API's error JSON.
//!
//! Counted by a SHA-256 of the `Authorization` value (the token itself is not kept); a request
//! without one passes through to the handler's 401. The slot is held by the response body, so
//! it frees when the stream ends or the client goes away.

use super::error::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The SSE route this bounds.
pub const STREAM_PATH: &str = "/api/v1/events/stream";

/// Open streams per token, shared by every request.
#[derive(Clone)]
pub struct StreamCap {
    per_token: usize,
    open: Arc<Mutex<HashMap<[u8; 32], usize>>>,
}

impl StreamCap {
    pub fn new(per_token: usize) -> StreamCap {
        StreamCap {
            per_token,
            open: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, key: [u8; 32]) -> Option<Slot> {
        let mut open = self.lock();
        let n = open.entry(key).or_default();
        if *n >= self.per_token {
            return None;
        }
        *n += 1;
        Some(Slot {
            cap: self.clone(),
            key,
        })
    }
}

/// One open stream; gives its place back when dropped.
struct Slot {
    cap: StreamCap,
    key: [u8; 32],
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.cap.lock();
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Middleware over the whole app; only [`STREAM_PATH`] is counted.
pub async fn limit_streams(State(cap): State<StreamCap>, req: Request, next: Next) -> Response {
    if req.uri().path() != STREAM_PATH {
        return next.run(req).await;
    }
    let Some(auth) = req.headers().get(header::AUTHORIZATION) else {
        return next.run(req).await;
    };
    let key: [u8; 32] = Sha256::digest(auth.as_bytes()).into();
    let Some(slot) = cap.take(key) else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!(
                "this token already has {} open event streams (http.sse_streams_per_token_max); \
                 close one first",
                cap.per_token
            ),
        )
        .into_response();
    };
    let resp = next.run(req).await;
    if !resp.status().is_success() {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &slot;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}
