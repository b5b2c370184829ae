//! Evidence on the closed loop over real HTTP (the events router on 127.0.0.1:0, a real
//! SQLite store and the filesystem blob store in a temp dir): a photo uploaded, referenced by a
//! resolve and listed in the history; files refused by content (415) and by size (413); GPS
//! removed from a JPEG that still decodes; a department that cannot see the event refused and
//! audited; the evidence rule; deletion audited and in the history; everything kept across a
//! reopen of the store. (The real `hub` binary restarted: tests/tests/dashboard_attachments.rs.)

mod common;
mod store_pg;

use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;
use wangge_events::attachments::{AttachmentsConfig, EvidenceRule, Outcome};
use wangge_events::model::now_ns;
use wangge_events::{Events, EventsConfig};

/// The photo the tests upload: a repaired manhole cover (PNG, no metadata).
const PHOTO_PNG: &[u8] = include_bytes!("fixtures/after-repair.png");

fn events_with(dir: &Path, attachments: AttachmentsConfig) -> Events {
    Events::open(
        &dir.join("events.db"),
        EventsConfig {
            attachments: attachments.validate().unwrap(),
            ..EventsConfig::defaults()
        },
        directory(),
    )
    .unwrap()
}

/// A fresh engine with `attachments` settings, its API served.
async fn served(attachments: AttachmentsConfig) -> (tempfile::TempDir, Events, Api) {
    let dir = tempfile::tempdir().unwrap();
    let events = events_with(dir.path(), attachments);
    let api = Api::start(&events).await;
    (dir, events, api)
}

/// A manhole cover opened now: raises `manhole.displaced` (shared with sw, not with hb).
fn open_manhole(events: &Events) -> i64 {
    let r = manhole_reading(protocol::Quantity::Opened, 1.0, now_ns());
    events.ingest(&r, now_ns()).unwrap()[0].event.id
}

/// A smoke detector's `fire.smoke` raised now (消防's, not shared with sw).
fn raise_smoke(events: &Events) -> i64 {
    events
        .store()
        .apply_condition(&raised(SMOKE, "fire.smoke", now_ns() / S), now_ns())
        .unwrap()
        .unwrap()
        .event
        .id
}

/// The last entry of event `id`'s history as `sw-read` sees it, which must be the deletion of
/// the photo with `hash`; returns the event's detail.
async fn deletion_is_last_in_history(api: &Api, id: i64, hash: &str) -> Value {
    let (_, detail) = api.get(&format!("/events/{id}"), "sw-read").await;
    let last = &detail["history"].as_array().unwrap().last().unwrap();
    assert_eq!(last["action"], "attachment.delete");
    assert!(last["note"].as_str().unwrap().contains(hash), "{last}");
    detail.clone()
}

/// A multipart/form-data body with one part per `(name, filename, content type, bytes)`.
fn multipart(parts: &[(&str, &str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----wangge-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, filename, ctype, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                 filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `POST events/{id}/attachments` of one `file` part: status and JSON body.
async fn upload(api: &Api, id: i64, token: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    let (ctype, body) = multipart(&[("file", name, "image/jpeg", bytes)]);
    upload_raw(api, id, token, &ctype, body).await
}

async fn upload_raw(api: &Api, id: i64, token: &str, ctype: &str, body: Vec<u8>) -> (u16, Value) {
    let r = api
        .client
        .post(format!("{}/events/{id}/attachments", api.base))
        .bearer_auth(token)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// `GET` of an attachment's bytes: status, headers, body.
async fn fetch(
    api: &Api,
    id: i64,
    att: i64,
    token: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = api
        .client
        .get(format!("{}/events/{id}/attachments/{att}", api.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let headers = r.headers().clone();
    (code, headers, r.bytes().await.unwrap().to_vec())
}

/// `sw-write` posts the transition `body` on event `id`: (status, JSON body).
async fn sw_acts(api: &Api, id: i64, body: Value) -> (u16, Value) {
    api.transition(id, "sw-write", body).await
}

/// Walks `id` from open to in_progress (dispatched to sw).
async fn to_in_progress(api: &Api, id: i64) {
    for body in [
        json!({"action": "acknowledge"}),
        json!({"action": "dispatch", "department": "sw"}),
        json!({"action": "start"}),
    ] {
        let (code, ev) = api.transition(id, "sw-write", body).await;
        assert_eq!(code, 200, "{ev}");
    }
}

/// Before any transition names it, the upload has a history row of its own ("photo
/// uploaded" on the event page), by its uploader, the status unchanged.
async fn uploaded_alone_is_in_the_history(api: &Api, id: i64, att: i64) {
    let (code, detail) = api.get(&format!("/events/{id}"), "sw-read").await;
    assert_eq!(code, 200, "{detail}");
    let last = detail["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["action"], "attachment.upload", "{last}");
    assert_eq!(last["actor"], "sw/wang", "{last}");
    assert_eq!(last["from_status"], last["to_status"], "{last}");
    let note = last["note"].as_str().unwrap_or("");
    assert!(
        note.starts_with(&format!("attachment {att} uploaded")),
        "{last}"
    );
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[tokio::test]
async fn a_photo_is_uploaded_referenced_by_a_resolve_and_listed_in_the_history() {
    let (_dir, events, api) = served(AttachmentsConfig::default()).await;
    let id = open_manhole(&events);
    let (code, a) = upload(&api, id, "sw-write", "井盖-修复后.png", PHOTO_PNG).await;
    assert_eq!(code, 201, "{a}");
    // The type is the content's (PNG), not the part's Content-Type (image/jpeg) nor the name.
    assert_eq!(a["content_type"], "image/png");
    assert_eq!(a["sha256"], sha256_hex(PHOTO_PNG));
    assert_eq!(a["bytes"], PHOTO_PNG.len());
    assert_eq!(a["filename"], "井盖-修复后.png");
    assert_eq!(a["uploaded_by"], "sw/wang");
    assert_eq!(a["referenced"], false);
    let att = a["id"].as_i64().unwrap();
    assert_eq!(a["url"], format!("/api/v1/events/{id}/attachments/{att}"));
    uploaded_alone_is_in_the_history(&api, id, att).await;

    let (code, headers, bytes) = fetch(&api, id, att, "sw-read").await;
    assert_eq!(code, 200);
    assert_eq!(bytes, PHOTO_PNG);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(
        headers["content-disposition"],
        format!("inline; filename=\"event-{id}-attachment-{att}.png\"")
    );
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));

    to_in_progress(&api, id).await;
    let (code, ev) = sw_acts(
        &api,
        id,
        json!({"action": "resolve", "note": "盖板复位", "attachments": [att]}),
    )
    .await;
    assert_eq!(code, 200, "{ev}");
    assert_eq!(ev["status"], "resolved");

    let (code, detail) = api.get(&format!("/events/{id}"), "sw-read").await;
    assert_eq!(code, 200);
    let history = detail["history"].as_array().unwrap();
    let last = history.last().unwrap();
    assert_eq!(last["action"], "resolve");
    assert_eq!(last["attachments"], json!([att]));
    assert!(history[..history.len() - 1]
        .iter()
        .all(|h| h["attachments"] == json!([])));
    assert_eq!(detail["attachments"][0]["id"], att);
    assert_eq!(detail["attachments"][0]["referenced"], true);
    let (code, list) = api
        .get(&format!("/events/{id}/attachments"), "sw-read")
        .await;
    assert_eq!(code, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

/// A 1×1 lossless WebP (RIFF, `WEBP`, one `VP8L` chunk): the smallest photo a phone could send.
const PHOTO_WEBP: &[u8] = &[
    b'R', b'I', b'F', b'F', 0x1a, 0, 0, 0, b'W', b'E', b'B', b'P', b'V', b'P', b'8', b'L', 0x0d, 0,
    0, 0, 0x2f, 0, 0, 0, 0x10, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xfe, 0x07, 0x00,
];

#[tokio::test]
async fn a_webp_photo_is_taken_by_its_content_and_served_as_webp() {
    let (_dir, events, api) = served(AttachmentsConfig::default()).await;
    let id = open_manhole(&events);
    // Named and labelled as a JPEG (`upload` says image/jpeg): the content decides.
    let (code, a) = upload(&api, id, "sw-write", "after.jpg", PHOTO_WEBP).await;
    assert_eq!(code, 201, "{a}");
    assert_eq!(a["content_type"], "image/webp");
    assert_eq!(a["location_removed"], false, "nothing to remove");
    assert_eq!(a["sha256"], sha256_hex(PHOTO_WEBP));
    let att = a["id"].as_i64().unwrap();
    let (code, headers, bytes) = fetch(&api, id, att, "sw-read").await;
    assert_eq!(code, 200);
    assert_eq!(bytes, PHOTO_WEBP);
    assert_eq!(headers["content-type"], "image/webp");
    assert_eq!(
        headers["content-disposition"],
        format!("inline; filename=\"event-{id}-attachment-{att}.webp\"")
    );
}

/// A JPEG of 64×48 with EXIF: IFD0 holds an orientation and a GPS IFD pointer; the GPS IFD
/// holds `N` and a latitude of 39° 7' 47.11" (out of line, 24 bytes).
fn jpeg_with_gps() -> (Vec<u8>, [u8; 24]) {
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8])
    });
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 90)
        .encode_image(&img)
        .unwrap();
    let mut lat = [0u8; 24];
    for (i, (n, d)) in [(39u32, 1u32), (7, 1), (4711, 100)].iter().enumerate() {
        lat[i * 8..i * 8 + 4].copy_from_slice(&n.to_le_bytes());
        lat[i * 8 + 4..i * 8 + 8].copy_from_slice(&d.to_le_bytes());
    }
    let entry = |tag: u16, typ: u16, count: u32, value: [u8; 4]| {
        let mut e = Vec::new();
        e.extend_from_slice(&tag.to_le_bytes());
        e.extend_from_slice(&typ.to_le_bytes());
        e.extend_from_slice(&count.to_le_bytes());
        e.extend_from_slice(&value);
        e
    };
    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend(entry(0x0112, 3, 1, [6, 0, 0, 0]));
    tiff.extend(entry(0x8825, 4, 1, 38u32.to_le_bytes()));
    tiff.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(tiff.len(), 38);
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend(entry(0x0001, 2, 2, *b"N\0\0\0"));
    tiff.extend(entry(0x0002, 5, 3, 68u32.to_le_bytes()));
    tiff.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(tiff.len(), 68);
    tiff.extend_from_slice(&lat);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    let mut jpeg = plain[..2].to_vec();
    jpeg.extend(app1);
    jpeg.extend_from_slice(&plain[2..]);
    (jpeg, lat)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn gps_location_is_removed_from_a_jpeg_and_the_photo_still_decodes() {
    let (jpeg, lat) = jpeg_with_gps();
    let original = image::load_from_memory(&jpeg).unwrap().to_rgb8();
    let gps_tag = 0x8825u16.to_le_bytes();
    assert!(contains(&jpeg, &lat) && contains(&jpeg, &gps_tag));

    let (_dir, events, api) = served(AttachmentsConfig::default()).await;
    let id = open_manhole(&events);
    let (code, a) = upload(&api, id, "sw-write", "IMG_0001.JPG", &jpeg).await;
    assert_eq!(code, 201, "{a}");
    assert_eq!(a["content_type"], "image/jpeg");
    assert_eq!(a["location_removed"], true);
    let (code, headers, stored) = fetch(&api, id, a["id"].as_i64().unwrap(), "sw-write").await;
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(a["sha256"], sha256_hex(&stored));
    assert!(!contains(&stored, &lat), "the latitude is gone");
    assert!(
        !contains(&stored, &gps_tag),
        "IFD0 no longer points to a GPS IFD"
    );
    assert!(!contains(&stored, b"N\0\0\0\x02\0"), "GPS entries zeroed");
    // The rest of EXIF stays (orientation 6), and the image data is untouched.
    assert!(contains(&stored, b"Exif\0\0II*\0"));
    assert!(contains(&stored, &[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0]));
    let decoded = image::load_from_memory(&stored).unwrap().to_rgb8();
    assert_eq!(decoded.dimensions(), (64, 48));
    assert_eq!(decoded, original, "decodes to the same pixels");

    // An operator who keeps locations gets the file as uploaded.
    let (_dir2, events2, api2) = served(AttachmentsConfig {
        keep_location: true,
        ..AttachmentsConfig::default()
    })
    .await;
    let id2 = open_manhole(&events2);
    let (code, kept) = upload(&api2, id2, "sw-write", "IMG_0001.JPG", &jpeg).await;
    assert_eq!(code, 201, "{kept}");
    assert_eq!(kept["location_removed"], false);
    assert_eq!(kept["sha256"], sha256_hex(&jpeg));
}

#[tokio::test]
async fn files_that_are_not_photos_are_refused_by_content_with_415_naming_the_type() {
    let (_dir, events, api) = served(AttachmentsConfig::default()).await;
    let id = open_manhole(&events);
    for (bytes, detected) in [
        (&b"%PDF-1.7\n1 0 obj <<>> endobj\n"[..], "application/pdf"),
        (
            &b"<!DOCTYPE html><script>alert(1)</script>"[..],
            "text/html",
        ),
        (
            &b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>"[..],
            "image/svg+xml",
        ),
        (&b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"[..], "image/gif"),
    ] {
        // Named and labelled as a JPEG: only the content counts.
        let (code, err) = upload(&api, id, "sw-write", "photo.jpg", bytes).await;
        assert_eq!(code, 415, "{detected}: {err}");
        assert_eq!(err["error"]["code"], "unsupported_type");
        assert_eq!(err["error"]["field"], "file");
        let message = error_message(&err);
        assert!(message.contains(detected), "{message}");
    }
    // A JPEG header over garbage: the type is right but the file does not hold together.
    let (code, err) = upload(
        &api,
        id,
        "sw-write",
        "cut.jpg",
        &[0xFF, 0xD8, 0xFF, 0xE0, 0x7F, 0xFF, 1],
    )
    .await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (422, Some("malformed_image")),
        "{err}"
    );
    // Not multipart at all, a part that is not `file`, no part: each named.
    let (code, err) = upload_raw(&api, id, "sw-write", "image/png", PHOTO_PNG.to_vec()).await;
    assert_eq!(code, 415, "{err}");
    assert!(error_message(&err).contains("multipart/form-data"));
    let (ctype, body) = multipart(&[("photo", "a.png", "image/png", PHOTO_PNG)]);
    let (code, err) = upload_raw(&api, id, "sw-write", &ctype, body).await;
    assert_eq!(code, 400, "{err}");
    assert!(error_message(&err).contains("field `photo`"));
    let (ctype, body) = multipart(&[]);
    let (code, err) = upload_raw(&api, id, "sw-write", &ctype, body).await;
    assert_eq!(code, 400, "{err}");
    assert!(error_message(&err).contains("field `file`"));
    let (_, list) = api
        .get(&format!("/events/{id}/attachments"), "sw-read")
        .await;
    assert_eq!(list["items"], json!([]), "nothing refused was stored");
    let m = events.attachment_metrics();
    assert_eq!(
        m.get(Outcome::RefusedType),
        4,
        "refusals are counted by reason"
    );
    assert_eq!(m.get(Outcome::RefusedMalformed), 1);
    assert_eq!(m.get(Outcome::Stored), 0);
}

#[tokio::test]
async fn a_photo_over_the_size_limit_is_refused_with_413() {
    let (dir, events, api) = served(AttachmentsConfig {
        bytes_max: PHOTO_PNG.len() as u64,
        ..AttachmentsConfig::default()
    })
    .await;
    let id = open_manhole(&events);
    // Just over the limit (inside the multipart allowance), then far over it (past the
    // body limit): both 413 naming the field and the setting.
    for size in [PHOTO_PNG.len() + 1, 512 * 1024] {
        let mut big = PHOTO_PNG[..8].to_vec();
        big.resize(size, 0);
        let (code, err) = upload(&api, id, "sw-write", "big.png", &big).await;
        assert_eq!(code, 413, "{size}: {err}");
        assert_eq!(err["error"]["code"], "too_large");
        assert_eq!(err["error"]["field"], "file");
        assert!(error_message(&err).contains("bytes_max"));
    }
    let (_, list) = api
        .get(&format!("/events/{id}/attachments"), "sw-read")
        .await;
    assert_eq!(list["items"], json!([]));
    assert_eq!(events.attachment_metrics().get(Outcome::RefusedSize), 2);
    let (code, a) = upload(&api, id, "sw-write", "exact.png", PHOTO_PNG).await;
    assert_eq!(code, 201, "exactly bytes_max is accepted: {a}");
    assert_eq!(events.attachment_metrics().get(Outcome::Stored), 1);
    let blobs = wangge_testkit::paths::files_under(&dir.path().join("attachments"));
    assert_eq!(blobs.len(), 1, "one blob stored: {blobs:?}");
}

#[tokio::test]
async fn a_department_that_cannot_see_the_event_gets_404_and_the_attempt_is_audited() {
    let (_dir, events, api) = served(AttachmentsConfig::default()).await;
    let id = open_manhole(&events);
    let (code, a) = upload(&api, id, "sw-write", "p.png", PHOTO_PNG).await;
    assert_eq!(code, 201, "{a}");
    let att = a["id"].as_i64().unwrap();

    // hb is not shared this manhole cover's events: every route answers as for no event.
    let (code, err) = upload(&api, id, "hb-write", "p.png", PHOTO_PNG).await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (code, _) = api
        .get(&format!("/events/{id}/attachments"), "hb-write")
        .await;
    assert_eq!(code, 404);
    let (code, _, bytes) = fetch(&api, id, att, "hb-write").await;
    assert_eq!(code, 404);
    assert!(
        !contains(&bytes, &PHOTO_PNG[..64]),
        "no photo bytes in the refusal"
    );
    assert_eq!(
        api.delete(&format!("/events/{id}/attachments/{att}"), "hb-write")
            .await,
        404
    );
    // A read-only token of the right department sees but cannot change.
    let (code, _) = upload(&api, id, "sw-read", "p.png", PHOTO_PNG).await;
    assert_eq!(code, 403);
    assert_eq!(
        api.delete(&format!("/events/{id}/attachments/{att}"), "sw-read")
            .await,
        403
    );
    let (code, _, bytes) = fetch(&api, id, att, "sw-read").await;
    assert_eq!((code, bytes.as_slice()), (200, PHOTO_PNG));
    let (code, _, _) = fetch(&api, id, att, "admin-token").await;
    assert_eq!(code, 200);

    let (_, audit) = api.get("/audit", "admin-token").await;
    let actions: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["department"].as_str().unwrap_or("").to_string(),
                a["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (dept, action) in [
        ("hb", "attachment.upload"),
        ("hb", "attachment.list"),
        ("hb", "attachment.read"),
        ("hb", "attachment.delete"),
        ("sw", "attachment.upload"),
    ] {
        assert!(
            actions.contains(&(dept.to_string(), action.to_string())),
            "{dept} {action} audited: {actions:?}"
        );
    }
}

#[tokio::test]
async fn the_evidence_rule_refuses_resolve_and_close_without_a_photo_and_names_the_rule() {
    let (_dir, events, api) = served(AttachmentsConfig {
        require: vec![EvidenceRule {
            name: "处置后照片".into(),
            event_types: vec!["manhole.*".into()],
            actions: vec!["resolve".into(), "close".into()],
        }],
        ..AttachmentsConfig::default()
    })
    .await;
    let id = open_manhole(&events);
    to_in_progress(&api, id).await;
    let (code, err) = sw_acts(&api, id, json!({"action": "resolve"})).await;
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["error"]["code"], "evidence_required");
    assert_eq!(err["error"]["field"], "attachments");
    assert!(error_message(&err).contains("处置后照片"));

    // Another event's photo, an id that does not exist: refused, naming why.
    let smoke = raise_smoke(&events);
    let (code, foreign) = upload(&api, smoke, "xf-write", "smoke.png", PHOTO_PNG).await;
    assert_eq!(code, 201, "{foreign}");
    for bad in [foreign["id"].as_i64().unwrap(), 9999] {
        let (code, err) =
            sw_acts(&api, id, json!({"action": "resolve", "attachments": [bad]})).await;
        assert_eq!(
            (code, err["error"]["code"].as_str()),
            (422, Some("attachment_unusable")),
            "{err}"
        );
        let message = error_message(&err);
        assert!(
            message.contains(&format!(
                "attachment {bad} is not an attachment of event {id}"
            )),
            "{message}"
        );
    }
    let (_, ev) = api.get(&format!("/events/{id}"), "sw-read").await;
    assert_eq!(ev["status"], "in_progress", "nothing changed");

    let (_, a) = upload(&api, id, "sw-write", "after.png", PHOTO_PNG).await;
    let att = a["id"].as_i64().unwrap();
    let (code, ev) = sw_acts(&api, id, json!({"action": "resolve", "attachments": [att]})).await;
    assert_eq!(
        (code, ev["status"].as_str()),
        (200, Some("resolved")),
        "{ev}"
    );
    // A photo counts once: close needs its own (核查 photo).
    let (code, err) = sw_acts(&api, id, json!({"action": "close", "attachments": [att]})).await;
    assert_eq!(code, 422, "{err}");
    assert!(error_message(&err).contains("already referenced"));
    let (code, err) = sw_acts(&api, id, json!({"action": "close"})).await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (422, Some("evidence_required"))
    );
    let mut check = PHOTO_PNG.to_vec();
    check.extend_from_slice(b"verified"); // after IEND: another hash, same picture
    let (_, b) = upload(&api, id, "sw-write", "check.png", &check).await;
    let (code, ev) = sw_acts(
        &api,
        id,
        json!({"action": "close", "attachments": [b["id"]]}),
    )
    .await;
    assert_eq!((code, ev["status"].as_str()), (200, Some("closed")), "{ev}");
    // Actions the rule does not name need nothing.
    let (code, ev) = sw_acts(&api, id, json!({"action": "reopen"})).await;
    assert_eq!(code, 200, "{ev}");
}

#[tokio::test]
async fn deleting_a_photo_is_audited_shown_in_the_history_and_its_bytes_go() {
    let (dir, events, api) = served(AttachmentsConfig::default()).await;
    let id = open_manhole(&events);
    let (_, a) = upload(&api, id, "sw-write", "wrong.png", PHOTO_PNG).await;
    let att = a["id"].as_i64().unwrap();
    let hash = a["sha256"].as_str().unwrap().to_string();
    let blob = dir.path().join("attachments").join(&hash[..2]).join(&hash);
    assert!(blob.exists());

    let r = api
        .client
        .delete(format!("{}/events/{id}/attachments/{att}", api.base))
        .bearer_auth("sw-write")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let deleted: Value = r.json().await.unwrap();
    assert_eq!(deleted["deleted_by"], "sw/wang");
    assert!(deleted["deleted_at"].is_string());
    assert!(!blob.exists(), "the bytes are gone");
    let (code, _, _) = fetch(&api, id, att, "sw-write").await;
    assert_eq!(code, 404);
    assert_eq!(
        api.delete(&format!("/events/{id}/attachments/{att}"), "sw-write")
            .await,
        409
    );

    let detail = deletion_is_last_in_history(&api, id, &hash).await;
    assert_eq!(
        detail["history"].as_array().unwrap().last().unwrap()["actor"],
        "sw/wang"
    );
    assert_eq!(detail["attachments"], json!([]));
    let (_, audit) = api.get("/audit", "admin-token").await;
    let entry = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "attachment.delete" && e["department"] == "sw")
        .cloned()
        .expect("deletion audited");
    assert_eq!(entry["actor"], "wang");
    assert_eq!(entry["event_id"], id);
    assert!(entry["reason"].as_str().unwrap().contains(&hash));
    assert!(entry["at"].is_string());
}

#[tokio::test]
async fn photos_and_their_references_survive_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (id, att) = {
        let events = events_with(dir.path(), AttachmentsConfig::default());
        let api = Api::start(&events).await;
        let id = open_manhole(&events);
        let (_, a) = upload(&api, id, "sw-write", "p.png", PHOTO_PNG).await;
        let att = a["id"].as_i64().unwrap();
        to_in_progress(&api, id).await;
        let (code, _) = sw_acts(&api, id, json!({"action": "resolve", "attachments": [att]})).await;
        assert_eq!(code, 200);
        (id, att)
    };
    let events = events_with(dir.path(), AttachmentsConfig::default());
    let api = Api::start(&events).await;
    let (code, _, bytes) = fetch(&api, id, att, "sw-read").await;
    assert_eq!((code, bytes.as_slice()), (200, PHOTO_PNG));
    let (_, detail) = api.get(&format!("/events/{id}"), "sw-read").await;
    assert_eq!(
        detail["history"].as_array().unwrap().last().unwrap()["attachments"],
        json!([att])
    );
}

/// A PNG chunk: length, type, data, CRC (computed: the decoder checks it).
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let crc = {
        let mut c = 0xFFFF_FFFFu32;
        for b in kind.iter().chain(data) {
            c ^= u32::from(*b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    };
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[test]
fn png_and_webp_location_chunks_are_dropped_and_the_rest_kept() {
    use wangge_events::attachments::{location, ImageType};
    // PNG: an eXIf chunk (the TIFF block of the GPS JPEG) after IHDR.
    let (jpeg, lat) = jpeg_with_gps();
    let tiff_at = jpeg.windows(6).position(|w| w == b"Exif\0\0").unwrap() + 6;
    let tiff = &jpeg[tiff_at..tiff_at + 92];
    let ihdr_end = 8 + 8 + 13 + 4;
    let mut png = PHOTO_PNG[..ihdr_end].to_vec();
    png.extend(png_chunk(b"eXIf", tiff));
    png.extend_from_slice(&PHOTO_PNG[ihdr_end..]);
    assert!(contains(&png, &lat));
    let out = location::strip(ImageType::Png, &png).unwrap();
    assert!(out.removed);
    assert_eq!(out.bytes, PHOTO_PNG, "exactly the chunk is gone");
    let kept = location::strip(ImageType::Png, PHOTO_PNG).unwrap();
    assert_eq!((kept.removed, kept.bytes.as_slice()), (false, PHOTO_PNG));
    image::load_from_memory(&out.bytes).unwrap();

    // WebP: VP8X (flags: EXIF) + an image chunk + EXIF; the flag and the RIFF size follow.
    let mut vp8x = vec![0x08, 0, 0, 0];
    vp8x.extend_from_slice(&[0; 6]);
    let chunk = |fourcc: &[u8; 4], data: &[u8]| {
        let mut c = fourcc.to_vec();
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(data);
        if data.len() % 2 == 1 {
            c.push(0);
        }
        c
    };
    let mut body = b"WEBP".to_vec();
    body.extend(chunk(b"VP8X", &vp8x));
    body.extend(chunk(b"VP8L", &[0x2F, 1, 2, 3, 4]));
    body.extend(chunk(b"EXIF", tiff));
    let mut webp = b"RIFF".to_vec();
    webp.extend_from_slice(&(body.len() as u32).to_le_bytes());
    webp.extend(body);
    let out = location::strip(ImageType::WebP, &webp).unwrap();
    assert!(out.removed);
    assert!(!contains(&out.bytes, &lat) && !contains(&out.bytes, b"EXIF"));
    assert_eq!(out.bytes[20] & 0x08, 0, "VP8X no longer announces EXIF");
    let riff = u32::from_le_bytes(out.bytes[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff, out.bytes.len() - 8);
    assert!(contains(
        &out.bytes,
        &[b'V', b'P', b'8', b'L', 5, 0, 0, 0, 0x2F, 1, 2, 3, 4, 0]
    ));
}

#[test]
fn hostile_metadata_offsets_never_panic_the_location_stripper() {
    use wangge_events::attachments::{location, ImageType};
    let (jpeg, _) = jpeg_with_gps();
    let mut rng = wangge_testkit::rng::SplitMix64(0x5EED_A77A);
    let mut refused = 0;
    for (kind, base) in [
        (ImageType::Jpeg, jpeg.as_slice()),
        (ImageType::Png, PHOTO_PNG),
    ] {
        for _ in 0..3000 {
            let mut b = base.to_vec();
            // Bytes of the headers and metadata changed, then maybe cut short.
            for _ in 0..rng.range(1, 6) {
                let at = rng.range(3, 140) as usize;
                b[at] = rng.next_u64() as u8;
            }
            if rng.chance(30) {
                b.truncate(rng.range(12, b.len() as u64) as usize);
            }
            match location::strip(kind, &b) {
                Ok(out) => assert!(out.bytes.len() <= b.len()),
                Err(message) => {
                    refused += 1;
                    assert!(message.contains("not a well-formed"), "{message}");
                }
            }
        }
    }
    assert!(refused > 0, "some mutations must break the structure");
}

#[tokio::test]
async fn one_photo_on_two_events_is_stored_once_and_deleting_one_keeps_the_other() {
    let (dir, events, api) = served(AttachmentsConfig::default()).await;
    let manhole = open_manhole(&events);
    let smoke = raise_smoke(&events);
    let (_, a) = upload(&api, manhole, "sw-write", "p.png", PHOTO_PNG).await;
    let (_, b) = upload(&api, smoke, "xf-write", "p.png", PHOTO_PNG).await;
    assert_eq!(a["sha256"], b["sha256"]);
    let root = dir.path().join("attachments");
    let blobs = |root: &Path| {
        wangge_testkit::paths::files_under(root)
            .into_iter()
            .filter(|(_, rel)| !rel.starts_with("tmp/"))
            .count()
    };
    assert_eq!(blobs(&root), 1, "stored once");
    let (a, b) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    let path = |id: i64, att: i64| format!("/events/{id}/attachments/{att}");
    assert_eq!(api.delete(&path(manhole, a), "sw-write").await, 200);
    let (code, _, bytes) = fetch(&api, smoke, b, "xf-write").await;
    assert_eq!(
        (code, bytes.as_slice()),
        (200, PHOTO_PNG),
        "the other copy is kept"
    );
    assert_eq!(blobs(&root), 1);
    assert_eq!(api.delete(&path(smoke, b), "xf-write").await, 200);
    assert_eq!(blobs(&root), 0, "the last deletion removes the bytes");
}

/// An engine on the PostgreSQL database `url` with the cluster's blob store, as one hub of a
/// cluster builds it (hub/src/events_bridge).
fn events_on_postgres(url: &str) -> Events {
    let pg = store_pg::connect(url);
    let config = EventsConfig {
        attachments: AttachmentsConfig::default().validate().unwrap(),
        ..EventsConfig::defaults()
    };
    let store = wangge_events::store::PgStore::open(pg.clone(), config.deadlines.clone()).unwrap();
    let blobs = std::sync::Arc::new(wangge_events::attachments::PgBlobStore::new(pg));
    Events::with_parts(std::sync::Arc::new(store), Some(blobs), config, directory()).unwrap()
}

/// Two hubs on one database: hub A takes the photo in, hub B serves it and resolves with it.
/// The engines (and their pools, each with a runtime of its own) outlive the test's runtime,
/// so none is dropped inside an asynchronous context.
#[test]
fn on_postgres_a_photo_taken_in_by_one_hub_is_served_referenced_and_deleted_by_another() {
    let url = store_pg::fresh_database();
    let (a, b) = (events_on_postgres(&url), events_on_postgres(&url));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hash = rt.block_on(served_by_two_hubs(&a, &b));
    drop(rt);
    let stored = store_pg::connect(&url)
        .query_opt("SELECT 1 FROM attachment_blobs WHERE sha256 = $1", &[&hash])
        .unwrap();
    assert!(
        stored.is_none(),
        "the last deletion removes the bytes from the database"
    );
}

/// The story on hubs `a` and `b`; the hash of the photo it took in and deleted.
async fn served_by_two_hubs(a: &Events, b: &Events) -> String {
    let (api_a, api_b) = (Api::start(a).await, Api::start(b).await);
    let id = open_manhole(a);
    let (code, up) = upload(&api_a, id, "sw-write", "p.png", PHOTO_PNG).await;
    assert_eq!(code, 201, "{up}");
    let att = up["id"].as_i64().unwrap();
    uploaded_alone_is_in_the_history(&api_b, id, att).await;
    let hash = up["sha256"].as_str().unwrap().to_string();
    assert_eq!(hash, sha256_hex(PHOTO_PNG));

    let (code, headers, bytes) = fetch(&api_b, id, att, "sw-read").await;
    assert_eq!(
        (code, bytes.as_slice()),
        (200, PHOTO_PNG),
        "hub B serves hub A's photo"
    );
    assert_eq!(headers["content-type"], "image/png");

    to_in_progress(&api_b, id).await;
    let resolve = json!({"action": "resolve", "attachments": [att]});
    let (code, ev) = api_b.transition(id, "sw-write", resolve.clone()).await;
    assert_eq!(code, 200, "{ev}");
    let (_, detail) = api_a.get(&format!("/events/{id}"), "sw-read").await;
    let history = detail["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["attachments"], json!([att]));
    assert_eq!(detail["attachments"][0]["referenced"], true);
    // Referenced once: a reopen and a second resolve naming it are refused, nothing changes.
    let (code, _) = api_a
        .transition(id, "sw-write", json!({"action": "reopen"}))
        .await;
    assert_eq!(code, 200);
    to_in_progress(&api_a, id).await;
    let (code, body) = api_a.transition(id, "sw-write", resolve).await;
    assert_eq!(code, 422, "{body}");
    assert!(error_message(&body).contains("already referenced"));
    let (_, detail) = api_b.get(&format!("/events/{id}"), "sw-read").await;
    assert_eq!(
        detail["status"], "in_progress",
        "the refused resolve changed nothing"
    );

    assert_eq!(
        api_a
            .delete(&format!("/events/{id}/attachments/{att}"), "sw-write")
            .await,
        200
    );
    let (code, _, _) = fetch(&api_b, id, att, "sw-read").await;
    assert_eq!(code, 404);
    deletion_is_last_in_history(&api_b, id, &hash).await;
    let (_, audit) = api_b.get("/audit", "admin-token").await;
    assert!(audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "attachment.delete" && e["event_id"] == id));
    hash
}
