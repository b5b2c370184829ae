//! How many edges each hub should own: a fair share, recomputed every lease round.

/// The number of edges a member should hold when `edges` are shared among `members` live hubs:
/// the ceiling of the average, so the shares always cover every edge.
pub fn fair_share(edges: usize, members: usize) -> usize {
    edges.div_ceil(members.max(1))
}

/// What one lease round should do, given what this hub holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebalance {
    /// Take up to this many free or expired leases.
    Acquire(usize),
    /// Hand back this many leases (a member joined; its share is waiting).
    Release(usize),
    Hold,
}

/// At most this many leases change hands per round and member, so a join or a death moves
/// edges over a few rounds instead of all hubs stampeding on one.
pub const MOVES_PER_ROUND_MAX: usize = 16;

/// The round's move: up to the fair share, or back down to it when others wait for edges.
/// `unowned` is how many leases nobody holds now (free or expired).
pub fn rebalance(held: usize, edges: usize, members: usize, unowned: usize) -> Rebalance {
    let share = fair_share(edges, members);
    if held < share && unowned > 0 {
        Rebalance::Acquire((share - held).min(unowned).min(MOVES_PER_ROUND_MAX))
    } else if held > share {
        Rebalance::Release((held - share).min(MOVES_PER_ROUND_MAX))
    } else {
        Rebalance::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_shares_cover_every_edge_and_nobody_holds_more_than_the_fair_share() {
        for edges in 0..40 {
            for members in 1..6 {
                // Simulate rounds until nobody moves: every member takes or gives back.
                let mut held = vec![0usize; members];
                for _round in 0..100 {
                    for m in 0..members {
                        let owned: usize = held.iter().sum();
                        match rebalance(held[m], edges, members, edges - owned) {
                            Rebalance::Acquire(n) => held[m] += n,
                            Rebalance::Release(n) => held[m] -= n,
                            Rebalance::Hold => {}
                        }
                    }
                }
                assert_eq!(
                    held.iter().sum::<usize>(),
                    edges,
                    "{edges} edges, {members} hubs"
                );
                assert!(
                    held.iter().all(|h| *h <= fair_share(edges, members)),
                    "{held:?}"
                );
            }
        }
    }

    #[test]
    fn a_lone_survivor_takes_every_edge_of_the_dead() {
        assert_eq!(rebalance(3, 9, 1, 6), Rebalance::Acquire(6));
        assert_eq!(rebalance(9, 9, 3, 0), Rebalance::Release(6));
        assert_eq!(rebalance(3, 9, 3, 0), Rebalance::Hold);
    }
}
