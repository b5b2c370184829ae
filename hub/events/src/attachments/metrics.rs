//! Counters behind `wangge_attachments_total{outcome}`: what happened to photo uploads and
//! deletions, so a stream of refused uploads (a misconfigured app, a probe) shows on a graph
//! and not only in the log.

use std::sync::atomic::{AtomicU64, Ordering};

/// The `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A photo stored.
    Stored,
    /// …and a location was removed from it.
    LocationRemoved,
    /// Refused: not a JPEG/PNG/WebP by content (415).
    RefusedType,
    /// Refused: larger than `bytes_max` (413).
    RefusedSize,
    /// Refused: a JPEG/PNG/WebP that does not hold together (422).
    RefusedMalformed,
    /// Refused: the event holds `per_event_max` photos (409).
    RefusedLimit,
    /// A photo deleted.
    Deleted,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Stored,
        Outcome::LocationRemoved,
        Outcome::RefusedType,
        Outcome::RefusedSize,
        Outcome::RefusedMalformed,
        Outcome::RefusedLimit,
        Outcome::Deleted,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::LocationRemoved => "location_removed",
            Outcome::RefusedType => "refused_type",
            Outcome::RefusedSize => "refused_size",
            Outcome::RefusedMalformed => "refused_malformed",
            Outcome::RefusedLimit => "refused_limit",
            Outcome::Deleted => "deleted",
        }
    }

    fn index(self) -> usize {
        Outcome::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }
}

/// The counters, one per [`Outcome`].
#[derive(Debug, Default)]
pub struct AttachmentMetrics {
    counts: [AtomicU64; Outcome::ALL.len()],
}

impl AttachmentMetrics {
    pub fn count(&self, o: Outcome) {
        self.counts[o.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, o: Outcome) -> u64 {
        self.counts[o.index()].load(Ordering::Relaxed)
    }

    /// Prometheus text.
    pub fn render_prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str(
            "# HELP wangge_attachments_total Photo uploads and deletions on events, by outcome.\n",
        );
        out.push_str("# TYPE wangge_attachments_total counter\n");
        for o in Outcome::ALL {
            let _ = writeln!(
                out,
                "wangge_attachments_total{{outcome=\"{}\"}} {}",
                o.name(),
                self.get(o)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_counted_and_rendered() {
        let m = AttachmentMetrics::default();
        m.count(Outcome::RefusedType);
        m.count(Outcome::RefusedType);
        m.count(Outcome::Stored);
        let mut text = String::new();
        m.render_prometheus(&mut text);
        assert!(text.contains("wangge_attachments_total{outcome=\"refused_type\"} 2\n"));
        assert!(text.contains("wangge_attachments_total{outcome=\"stored\"} 1\n"));
        assert!(text.contains("wangge_attachments_total{outcome=\"deleted\"} 0\n"));
        assert_eq!(
            text.matches("wangge_attachments_total{").count(),
            Outcome::ALL.len()
        );
    }
}
