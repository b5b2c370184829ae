//! What this hub owns, as the ingest path and the broker subscription see it: the edges whose
//! leases the last successful round held, trusted only until those leases could have expired.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The edges this hub may handle now and the fence of each.
pub struct Ownership {
    state: RwLock<State>,
    /// The owned edge set, for the broker's subscriptions.
    edges: watch::Sender<Vec<String>>,
    /// Whether this hub holds the leader role (trusted like the leases).
    leader: watch::Sender<bool>,
}

struct State {
    fences: BTreeMap<String, i64>,
    /// Past this instant the leases may have expired in the database (the round that renewed
    /// them started before it by the TTL less a margin): nothing is owned any more.
    valid_until: Instant,
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership {
            state: RwLock::new(State {
                fences: BTreeMap::new(),
                valid_until: Instant::now(),
            }),
            edges: watch::channel(Vec::new()).0,
            leader: watch::channel(false).0,
        }
    }
}

impl Ownership {
    /// The fence under which this hub holds `edge`'s lease, if it does and the lease cannot
    /// have expired yet.
    pub fn fence(&self, edge: &str) -> Option<i64> {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        if Instant::now() >= s.valid_until {
            return None;
        }
        s.fences.get(edge).copied()
    }

    /// The edges held (for `/metrics` and the cluster status).
    pub fn edges(&self) -> Vec<String> {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        if Instant::now() >= s.valid_until {
            return Vec::new();
        }
        s.fences.keys().cloned().collect()
    }

    /// Follows the owned edge set (changes only when it changes).
    pub fn subscribe(&self) -> watch::Receiver<Vec<String>> {
        self.edges.subscribe()
    }

    /// (The lease round's; public for tests.) Replaces what is held after a round that started at `round_start` renewed leases of
    /// `ttl`; they are trusted until `round_start + ttl - margin`.
    pub fn set(&self, fences: BTreeMap<String, i64>, round_start: Instant, ttl: Duration) {
        let margin = ttl / 5;
        let edges: Vec<String> = fences.keys().cloned().collect();
        {
            let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
            s.fences = fences;
            s.valid_until = round_start + ttl.saturating_sub(margin);
        }
        self.edges.send_if_modified(|old| {
            let changed = *old != edges;
            if changed {
                *old = edges;
            }
            changed
        });
    }

    /// Nothing is owned (the database cannot be reached, or the hub is leaving).
    pub(super) fn clear(&self) {
        self.set(BTreeMap::new(), Instant::now(), Duration::ZERO);
        self.leader
            .send_if_modified(|l| std::mem::replace(l, false));
    }

    /// Records whether the last round holds the leader role. What the leader alone does
    /// (MQTT publication, status sync) is idempotent per change, so a leader that learns late
    /// that it lost the role (a stop past the TTL) repeats at most a few changes, same ids.
    pub(super) fn set_leader(&self, held: bool) {
        self.leader
            .send_if_modified(|l| std::mem::replace(l, held) != held);
    }

    /// Follows the leader role (true while this hub holds it).
    pub fn leader(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    /// True while the leases are trusted (the last round is recent enough).
    pub fn is_current(&self) -> bool {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        Instant::now() < s.valid_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_trusted_only_until_it_could_have_expired() {
        let o = Ownership::default();
        let mut rx = o.subscribe();
        let ttl = Duration::from_millis(200);
        o.set(BTreeMap::from([("e1".to_string(), 3)]), Instant::now(), ttl);
        assert_eq!(o.fence("e1"), Some(3));
        assert_eq!(o.fence("e2"), None);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), vec!["e1".to_string()]);
        std::thread::sleep(ttl);
        assert_eq!(
            o.fence("e1"),
            None,
            "past the TTL less the margin: not owned"
        );
        assert!(o.edges().is_empty());
    }
}
