//! Evidence on the closed loop: photos attached to an event (处置前/后照片), checked by content,
//! stripped of where they were taken, stored by content hash, and required by chosen
//! transitions.
//!
//! - [`sniff`]: what a file is, from its magic bytes (JPEG, PNG, WebP accepted).
//! - [`location`]: GPS/XMP location removed from the metadata, image data untouched.
//! - [`blob`]: the content-addressed [`BlobStore`] seam and its filesystem implementation.
//! - [`pg_blob`]: the cluster's blob store, bytes in PostgreSQL.
//! - [`metrics`]: the counters behind `wangge_attachments_total{outcome}`.
//! - `service.rs`: the engine's operations ([`crate::Events::add_attachment`], …).
//! - this file: the `[events.attachments]` settings and the evidence rules they name.
//!
//! Attachment metadata (which event, which hash, who uploaded or deleted it, which transition
//! referenced it) is the store's: [`crate::store::Attachments`].

pub mod blob;
pub mod location;
pub mod metrics;
pub mod pg_blob;
mod service;
pub mod sniff;

pub use blob::{BlobStore, FsBlobStore};
pub use metrics::{AttachmentMetrics, Outcome};
pub use pg_blob::PgBlobStore;
pub use service::{clean_filename, AttachError};
pub use sniff::ImageType;

use crate::lifecycle::Action;
use serde::Deserialize;
use std::path::PathBuf;

/// The `[events.attachments]` table of `hub.toml`. All keys optional; unknown keys refused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentsConfig {
    /// Where the photos are kept. Default: `<data_dir>/attachments` (next to `events.db`).
    pub dir: Option<PathBuf>,
    /// Largest photo accepted, bytes; a larger upload is refused with 413. Default 10 MiB.
    pub bytes_max: u64,
    /// Most photos one event may hold (deleted ones do not count). Default 32.
    pub per_event_max: u32,
    /// Keep the GPS location in the photos' EXIF/XMP. Default false: it is removed before
    /// the photo is stored.
    pub keep_location: bool,
    /// `[[events.attachments.require]]`: transitions that must carry at least one photo.
    pub require: Vec<EvidenceRule>,
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        AttachmentsConfig {
            dir: None,
            bytes_max: 10 * 1024 * 1024,
            per_event_max: 32,
            keep_location: false,
            require: Vec::new(),
        }
    }
}

/// A rule such as "a resolved flood case comes back with a photo after repair" (返回处置后照片):
/// `action`s of events whose type matches `event_types` need at least one attachment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRule {
    /// Named in the refusal, so the person at the dashboard knows which rule stopped them.
    pub name: String,
    /// Event type patterns (`flood.*`, `manhole.displaced`); empty = every type.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Actions that need a photo. Default `["resolve", "close"]`.
    #[serde(default = "default_actions")]
    pub actions: Vec<String>,
}

fn default_actions() -> Vec<String> {
    vec!["resolve".into(), "close".into()]
}

/// Settings checked at start-up: sizes positive, rule actions real actions.
#[derive(Debug, Clone)]
pub struct Attachments {
    pub dir: Option<PathBuf>,
    pub bytes_max: u64,
    pub per_event_max: u32,
    pub keep_location: bool,
    rules: Vec<(EvidenceRule, Vec<Action>)>,
}

/// Largest `bytes_max` accepted (the photo is held in memory while it is checked).
pub const BYTES_MAX_LIMIT: u64 = 256 * 1024 * 1024;

impl AttachmentsConfig {
    /// The settings, or an error naming the key at fault and what it accepts.
    pub fn validate(&self) -> Result<Attachments, String> {
        let field = |k: &str, m: String| format!("[events.attachments] {k}: {m}");
        if !(1..=BYTES_MAX_LIMIT).contains(&self.bytes_max) {
            return Err(field(
                "bytes_max",
                format!("{} is not in 1..={BYTES_MAX_LIMIT}", self.bytes_max),
            ));
        }
        if self.per_event_max == 0 {
            return Err(field("per_event_max", "must be at least 1".into()));
        }
        let mut rules = Vec::new();
        for (i, r) in self.require.iter().enumerate() {
            let at = |k: &str| format!("require[{i}] ({:?}).{k}", r.name);
            if r.name.trim().is_empty() {
                return Err(field(&at("name"), "must not be empty".into()));
            }
            if r.actions.is_empty() {
                return Err(field(&at("actions"), "name at least one action".into()));
            }
            let mut actions = Vec::new();
            for a in &r.actions {
                actions.push(Action::from_name(a).ok_or_else(|| {
                    field(
                        &at("actions"),
                        format!(
                            "{a:?} is not one of acknowledge, dispatch, start, resolve, close, reopen"
                        ),
                    )
                })?);
            }
            rules.push((r.clone(), actions));
        }
        Ok(Attachments {
            dir: self.dir.clone(),
            bytes_max: self.bytes_max,
            per_event_max: self.per_event_max,
            keep_location: self.keep_location,
            rules,
        })
    }
}

impl Default for Attachments {
    fn default() -> Self {
        AttachmentsConfig::default()
            .validate()
            .expect("the defaults are valid")
    }
}

impl Attachments {
    /// The first rule that makes `action` on an event of `event_type` need a photo.
    pub fn rule_for(&self, event_type: &str, action: Action) -> Option<&EvidenceRule> {
        self.rules
            .iter()
            .find(|(r, actions)| {
                actions.contains(&action)
                    && crate::delivery::type_matches(&r.event_types, event_type)
            })
            .map(|(r, _)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_rules_match_by_type_pattern_and_action_and_bad_keys_are_named() {
        let c: AttachmentsConfig = toml::from_str(
            r#"
            [[require]]
            name = "处置后照片"
            event_types = ["flood.*", "manhole.displaced"]
            "#,
        )
        .unwrap();
        let a = c.validate().unwrap();
        assert_eq!(
            a.rule_for("flood.danger", Action::Resolve)
                .map(|r| r.name.as_str()),
            Some("处置后照片")
        );
        assert!(a.rule_for("manhole.displaced", Action::Close).is_some());
        assert!(a
            .rule_for("manhole.displaced", Action::Acknowledge)
            .is_none());
        assert!(a.rule_for("fire.smoke", Action::Resolve).is_none());

        let bad: AttachmentsConfig =
            toml::from_str("[[require]]\nname = \"x\"\nactions = [\"fly\"]").unwrap();
        let e = bad.validate().unwrap_err();
        assert!(e.contains("require[0]") && e.contains("\"fly\""), "{e}");
        let e = AttachmentsConfig {
            bytes_max: 0,
            ..AttachmentsConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("bytes_max"), "{e}");
        assert!(toml::from_str::<AttachmentsConfig>("colour = 1").is_err());
    }
}
