//! Replay protection for edge statuses: what a receiver remembers of the last status it accepted
//! from an edge ([`StatusMark`]) and how a new one compares with it ([`Freshness`]).

use crate::uplink::EdgeStatus;

/// What a receiver remembers of the last status it accepted from an edge, to refuse replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusMark {
    pub epoch: u64,
    pub counter: u64,
    /// The will counter the last accepted online status announced, until that will arrives.
    pub will_pending: Option<u64>,
}

/// How a status compares with the last accepted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Newer (epoch, counter): accept, remember [`StatusMark::after`].
    Fresh,
    /// The last will the accepted online status announced: accept once.
    AnnouncedWill,
    /// The status accepted last, again (a QoS 1 redelivery, the retained copy): harmless.
    Same,
    /// Older, or a will nobody announced: a replay, refused.
    Stale,
}

impl StatusMark {
    /// Judges `s` against `last` (`None`: nothing accepted yet, anything is fresh).
    pub fn judge(last: Option<&StatusMark>, s: &EdgeStatus) -> Freshness {
        let Some(last) = last else {
            return Freshness::Fresh;
        };
        let (key, prev) = ((s.epoch, s.counter), (last.epoch, last.counter));
        if key > prev {
            Freshness::Fresh
        } else if !s.online && s.epoch == last.epoch && last.will_pending == Some(s.counter) {
            Freshness::AnnouncedWill
        } else if key == prev {
            Freshness::Same
        } else {
            Freshness::Stale
        }
    }

    /// The mark after accepting `s` (judged `Fresh` or `AnnouncedWill`) over `last`.
    pub fn after(last: Option<&StatusMark>, s: &EdgeStatus, f: Freshness) -> Option<StatusMark> {
        match f {
            Freshness::Fresh => Some(StatusMark {
                epoch: s.epoch,
                counter: s.counter,
                will_pending: s.online.then_some(s.will_counter),
            }),
            // The will is spent: a second copy is stale.
            Freshness::AnnouncedWill => last.map(|l| StatusMark {
                will_pending: None,
                ..*l
            }),
            Freshness::Same | Freshness::Stale => last.copied(),
        }
    }
}
