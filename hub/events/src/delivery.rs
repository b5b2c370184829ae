//! Delivery to the platform, at least once and idempotent by (event id, version).
//!
//! Webhooks: a worker fans the outbox (`changes`) out into per-subscription `deliveries` rows
//! (durably, with the subscription's cursor moved in the same transaction), then POSTs each due
//! delivery with an HMAC-SHA256 signature, retrying with exponential backoff. Every attempt is
//! recorded, so a hub restart or a receiver outage loses nothing and the API can show attempts.
//!
//! MQTT: [`run_mqtt`] publishes each change on `wangge/v1/events/{department}/{type}` for every
//! department that receives it, resuming from a durable cursor after a restart.

use crate::egress::{AllowError, Egress, GuardedResolver, Refusal, RefusedAddress, Stage};
use crate::model::now_ns;
use crate::store::{AttemptOutcome, Delivery, FanOutPage, Subscription};
use crate::Events;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::future::Future;
use std::time::Duration;

/// Signature header: `sha256=HEX` of HMAC-SHA256(secret, raw body).
pub const SIGNATURE_HEADER: &str = "X-Wangge-Signature";
pub const EVENT_ID_HEADER: &str = "X-Wangge-Event-Id";
/// Unique per attempt: `{delivery id}.{attempt number}`.
pub const DELIVERY_HEADER: &str = "X-Wangge-Delivery";
/// The MQTT publisher's durable cursor name in the store.
pub const MQTT_CURSOR: &str = "mqtt";
/// Changes read from the outbox per round.
const FAN_OUT_PAGE: usize = 500;

/// Webhook delivery limits and the SSRF guard's policy (`[events.webhooks]` in hub.toml).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// First retry delay; doubles per failed attempt. Default 1000 ms.
    pub backoff_initial_ms: u64,
    /// Longest retry delay. Default 300 000 ms (5 min).
    pub backoff_max_ms: u64,
    /// Attempts before a delivery is marked `failed` (still listed). Default 100 (≈ 8 h at the cap).
    pub attempts_max: u32,
    /// Per-request timeout. Default 10 000 ms.
    pub timeout_ms: u64,
    /// Deliveries attempted concurrently per round. Default 16.
    pub batch_max: usize,
    /// Longest sleep between rounds when nothing wakes the worker. Default 1000 ms.
    pub poll_interval_ms: u64,
    /// Private targets the operator permits (the SSRF guard refuses 10/8, 172.16/12,
    /// 192.168/16, 100.64/10, fc00::/7 otherwise): CIDRs (`"10.12.0.0/16"`) or host names
    /// (`"platform.example"`, exact, whose addresses may then be private). Never opens loopback,
    /// link-local, unspecified, multicast or broadcast addresses. Default: empty.
    pub allow: Vec<String>,
    /// INSECURE, for tests and one-machine demos only: lets webhooks go to loopback
    /// (127/8, ::1) — and so lets any department's write token reach the hub's own loopback
    /// services. Link-local, unspecified and metadata addresses stay refused. Logged as a
    /// warning at start. Default false.
    pub insecure_allow_loopback: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            backoff_initial_ms: 1000,
            backoff_max_ms: 300_000,
            attempts_max: 100,
            timeout_ms: 10_000,
            batch_max: 16,
            poll_interval_ms: 1000,
            allow: Vec::new(),
            insecure_allow_loopback: false,
        }
    }
}

impl WebhookConfig {
    /// The SSRF guard this configuration describes (an error names the bad `allow` entry).
    pub fn egress(&self) -> Result<Egress, AllowError> {
        Egress::new(&self.allow, self.insecure_allow_loopback)
    }

    /// Delay before attempt `attempts + 1`, after `attempts` failures (≥ 1).
    pub fn backoff_ms(&self, attempts: u32) -> u64 {
        let exp = attempts.saturating_sub(1).min(32);
        self.backoff_initial_ms
            .saturating_mul(1u64 << exp)
            .min(self.backoff_max_ms)
    }
}

/// `sha256=HEX` of HMAC-SHA256 over `body` keyed by `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Verifies a signature header in constant time (what a receiver does).
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The MQTT topic of an event for one department.
pub fn mqtt_topic(department: &str, event_type: &str) -> String {
    format!("wangge/v1/events/{department}/{event_type}")
}

/// Whether a subscription's type patterns accept an event type.
pub fn type_matches(patterns: &[String], event_type: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => event_type.starts_with(prefix),
            None => p == event_type,
        })
}

/// Moves new outbox changes into per-subscription deliveries.
pub fn fan_out(events: &Events) -> Result<(), crate::store::StoreError> {
    let store = events.store();
    let now = now_ns();
    for sub in store.subscriptions()? {
        let mut cursor = sub.cursor;
        loop {
            let changes = store.changes_after(cursor, FAN_OUT_PAGE)?;
            let Some(last) = changes.last().map(|c| c.cursor) else {
                break;
            };
            let picked: Vec<(i64, i64, i64)> = changes
                .iter()
                .filter(|c| type_matches(&sub.event_types, &c.event.event_type))
                .filter(|c| match &sub.department {
                    Some(d) => events.visible_to(d, &c.event),
                    None => true,
                })
                .map(|c| (c.cursor, c.event.id, c.event.version))
                .collect();
            store.enqueue_deliveries(FanOutPage {
                subscription_id: sub.id,
                changes: &picked,
                up_to: last,
                now_ns: now,
            })?;
            cursor = last;
            if changes.len() < FAN_OUT_PAGE {
                break;
            }
        }
    }
    Ok(())
}

/// What a department may learn about a failed attempt: a short class, never the response body
/// nor the client's error text (which could carry what an internal host answered).
pub mod error_class {
    pub const TIMEOUT: &str = "timeout";
    pub const CONNECT: &str = "connect";
    pub const DNS: &str = "dns";
    pub const REFUSED_ADDRESS: &str = "refused_address";
    pub const HTTP_3XX: &str = "http_3xx";
    pub const HTTP_4XX: &str = "http_4xx";
    pub const HTTP_5XX: &str = "http_5xx";
    pub const HTTP_OTHER: &str = "http_other";
    pub const REQUEST: &str = "request";
    /// Every class; anything else stored (rows from before the classes) is shown as `request`.
    pub const ALL: [&str; 9] = [
        TIMEOUT,
        CONNECT,
        DNS,
        REFUSED_ADDRESS,
        HTTP_3XX,
        HTTP_4XX,
        HTTP_5XX,
        HTTP_OTHER,
        REQUEST,
    ];

    /// The class to show for a stored error string.
    pub fn shown(stored: &str) -> &'static str {
        ALL.iter()
            .find(|c| **c == stored)
            .copied()
            .unwrap_or(REQUEST)
    }
}

/// The guard's refusal in a client error's source chain, if that is why it failed.
fn refused_in(e: &(dyn std::error::Error + 'static)) -> Option<Refusal> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<RefusedAddress>() {
            return Some(r.reason);
        }
        cur = err.source();
    }
    None
}

fn classify_error(e: &reqwest::Error) -> &'static str {
    if refused_in(e).is_some() {
        return error_class::REFUSED_ADDRESS;
    }
    if e.is_timeout() {
        return error_class::TIMEOUT;
    }
    // The guarded resolver passes the system resolver's io::Error through.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("failed to lookup address") {
            return error_class::DNS;
        }
        cur = err.source();
    }
    if e.is_connect() {
        error_class::CONNECT
    } else {
        error_class::REQUEST
    }
}

fn classify_status(code: reqwest::StatusCode) -> &'static str {
    match code.as_u16() {
        300..=399 => error_class::HTTP_3XX,
        400..=499 => error_class::HTTP_4XX,
        500..=599 => error_class::HTTP_5XX,
        _ => error_class::HTTP_OTHER,
    }
}

async fn attempt(
    client: &reqwest::Client,
    egress: &Egress,
    cfg: &WebhookConfig,
    d: &Delivery,
    body: String,
    sub: &Subscription,
) -> AttemptOutcome {
    let attempt_no = d.attempts + 1;
    let uid = format!("{}.{}", d.id, attempt_no);
    let signature = sign(&sub.secret, body.as_bytes());
    // A literal address is never resolved, so the resolver cannot see it: checked here.
    let literal = match reqwest::Url::parse(&sub.url) {
        Ok(u) => egress
            .check_literal(&u)
            .map_err(|_| error_class::REFUSED_ADDRESS),
        Err(_) => Err(error_class::REQUEST),
    };
    let (http_status, error, success) = match literal {
        Err(class) => (None, Some(class), false),
        Ok(()) => {
            let sent = client
                .post(&sub.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature)
                .header(EVENT_ID_HEADER, d.event_id.to_string())
                .header(DELIVERY_HEADER, &uid)
                .header("X-Wangge-Event-Version", d.version.to_string())
                .body(body)
                .send()
                .await;
            match sent {
                // The body is never read: it is the receiver's, and showing it would turn the
                // hub into a reader of whatever answers at the URL.
                Ok(resp) => {
                    let code = resp.status();
                    if code.is_redirection() {
                        // Not followed (`redirect::Policy::none()`): a failed attempt.
                        egress.metrics().count(Stage::Deliver, Refusal::Redirect);
                    }
                    (
                        Some(i64::from(code.as_u16())),
                        (!code.is_success()).then(|| classify_status(code)),
                        code.is_success(),
                    )
                }
                Err(e) => {
                    if let Some(r) = refused_in(&e) {
                        egress.metrics().count(Stage::Deliver, r);
                    }
                    tracing::debug!(delivery = %uid, error = %e, "webhook client error");
                    (None, Some(classify_error(&e)), false)
                }
            }
        }
    };
    let failures = u32::try_from(attempt_no).unwrap_or(u32::MAX);
    let retry_at_ns = (!success && failures < cfg.attempts_max).then(|| {
        now_ns().saturating_add(
            i64::try_from(cfg.backoff_ms(failures)).unwrap_or(i64::MAX / 2) * 1_000_000,
        )
    });
    if !success {
        tracing::warn!(delivery = %uid, url = %sub.url, ?http_status, ?error, "webhook attempt failed");
    }
    AttemptOutcome {
        delivery_uid: uid,
        http_status,
        error: error.map(str::to_string),
        success,
        retry_at_ns,
    }
}

/// The webhook HTTP client: the guard's resolver (connects only to checked addresses), no
/// redirects, no proxy from the environment (a proxy would resolve and connect past the guard).
pub fn webhook_client(cfg: &WebhookConfig, egress: &Egress) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(cfg.timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(GuardedResolver {
            egress: egress.clone(),
        }))
        .build()
}

/// One round: fan out, then attempt every due delivery (up to `batch_max` concurrently).
pub async fn deliver_round(
    events: &Events,
    client: &reqwest::Client,
) -> Result<usize, crate::store::StoreError> {
    fan_out(events)?;
    let cfg = events.webhook_config();
    let egress = events.egress();
    let due = events.store().due_deliveries(now_ns(), cfg.batch_max)?;
    let n = due.len();
    let outcomes = futures::future::join_all(
        due.iter()
            .map(|(d, body, sub)| attempt(client, egress, cfg, d, body.clone(), sub)),
    )
    .await;
    for ((d, _, _), o) in due.iter().zip(outcomes) {
        events.store().record_attempt(d.id, &o, now_ns())?;
    }
    Ok(n)
}

/// The webhook worker: spawn it once; abort it on shutdown (all its state is in the store).
pub async fn run_webhooks(events: Events) {
    let cfg = events.webhook_config().clone();
    let client = match webhook_client(&cfg, events.egress()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook client could not be built; webhooks disabled");
            return;
        }
    };
    let mut feed = events.subscribe();
    loop {
        feed.borrow_and_update();
        let busy = match deliver_round(&events, &client).await {
            Ok(n) => n >= cfg.batch_max,
            Err(e) => {
                tracing::error!(error = %e, "webhook round failed");
                false
            }
        };
        if busy {
            continue;
        }
        let poll_ns = i64::try_from(cfg.poll_interval_ms).unwrap_or(1000) * 1_000_000;
        let wait_ns = match events.store().next_due_ns() {
            Ok(Some(t)) => (t - now_ns()).clamp(1_000_000, poll_ns),
            _ => poll_ns,
        };
        tokio::select! {
            _ = feed.changed() => {}
            _ = tokio::time::sleep(Duration::from_nanos(wait_ns as u64)) => {}
        }
    }
}

/// Publishes every change on MQTT through `publish(topic, payload)` (the hub's broker client),
/// resuming from the durable cursor [`MQTT_CURSOR`]. A failed publish is retried after a second;
/// the cursor only moves past a change once all its publications succeeded (at least once).
pub async fn run_mqtt<F, Fut>(events: Events, mut publish: F)
where
    F: FnMut(String, String) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let store = events.store().clone();
    let mut cursor = match store.get_cursor(MQTT_CURSOR) {
        Ok(c) if c > 0 => c,
        // First start: publish only what happens from now on.
        _ => store.last_cursor().unwrap_or(0),
    };
    let mut feed = events.subscribe();
    'outer: loop {
        feed.borrow_and_update();
        let changes = match store.changes_after(cursor, FAN_OUT_PAGE) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "mqtt: reading the outbox failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for ch in &changes {
            for (topic, payload) in events.mqtt_publications(ch) {
                if let Err(e) = publish(topic.clone(), payload).await {
                    tracing::warn!(%topic, error = %e, "mqtt publish failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue 'outer;
                }
            }
            cursor = ch.cursor;
            if let Err(e) = store.set_cursor(MQTT_CURSOR, cursor) {
                tracing::error!(error = %e, "mqtt: saving the cursor failed");
            }
        }
        if changes.len() < FAN_OUT_PAGE && feed.changed().await.is_err() {
            return;
        }
    }
}
