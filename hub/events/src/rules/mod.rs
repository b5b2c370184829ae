//! Rules: turn readings (and silence) into conditions raised and cleared.
//!
//! Every rule is evaluated per (component, rule) with O(1) state, in reading-timestamp order:
//! a reading older than or equal to the last one a rule has seen is ignored by that rule, so a
//! resent backlog can never raise twice, and a backlog that arrives late is evaluated with its
//! true times and its conditions are marked `late`.
//!
//! `config.rs` parses and validates `rules.toml` into a [`RuleSet`]; `evaluate.rs` runs it;
//! `edges.rs` raises `edge.offline` and holds back the sensors behind an offline edge
//! (`crate::topology`).

mod config;
mod edges;
mod evaluate;

pub use config::{
    Comparison, EdgeOfflineRule, Op, Rule, RuleConfig, RuleKind, RuleSet, RulesError, RulesFile,
    Settings, SourceOfflineRule, Window, DEFAULT_RULES, EDGE_OFFLINE_KIND, SOURCE_OFFLINE_KIND,
};
pub use evaluate::{Condition, ConditionKind, Evaluator, PendingChange, RuleInput};

pub(crate) const NS_PER_S: i64 = 1_000_000_000;
pub(crate) const MIN_PER_DAY: u16 = 24 * 60;
/// The event type raised by silence; offline rules always use it.
pub const OFFLINE_EVENT: &str = "device.offline";
