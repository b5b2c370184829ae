//! Sharing: which department receives which events, by rules rather than copies.
//!
//! A department sees an event when it owns or maintains the component (each switchable), when the
//! event is dispatched to it, or when a `[[share]]` rule names it and every criterion the rule gives
//! matches (missing criteria match anything). Admin tokens see everything.

use crate::config_file;
use crate::model::{Actor, ComponentCtx, Event, Scope};
use serde::Deserialize;
use std::path::Path;

/// The sharing file could not be read or parsed.
pub type SharingError = crate::config_file::FileError;

/// `config/sharing.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharingConfig {
    /// The component's owner department (权属单位) sees its events. Default true.
    #[serde(default = "yes")]
    pub owner_sees: bool,
    /// The component's maintainer department (养护单位) sees its events. Default true.
    #[serde(default = "yes")]
    pub maintainer_sees: bool,
    #[serde(default, rename = "share")]
    pub shares: Vec<ShareRule>,
}

fn yes() -> bool {
    true
}

impl Default for SharingConfig {
    fn default() -> Self {
        SharingConfig {
            owner_sees: true,
            maintainer_sees: true,
            shares: Vec::new(),
        }
    }
}

/// One sharing rule: `department` receives events matching all given criteria.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareRule {
    pub department: String,
    /// Event types; a trailing `*` matches a prefix (`fire.*`).
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub component_types: Vec<String>,
    /// Grid cell ids; a cell also matches every cell below it (prefix).
    #[serde(default)]
    pub grid_cells: Vec<String>,
    /// Components owned by one of these departments.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Components maintained by one of these departments.
    #[serde(default)]
    pub maintainers: Vec<String>,
}

/// The built-in sharing rules, kept in the repo at `config/sharing.toml`.
pub const DEFAULT_SHARING: &str = include_str!("../../../config/sharing.toml");

impl SharingConfig {
    pub fn load(path: &Path) -> Result<SharingConfig, SharingError> {
        let (text, name) = config_file::read(path)?;
        SharingConfig::parse(&text, &name)
    }

    pub fn parse(text: &str, path: &str) -> Result<SharingConfig, SharingError> {
        config_file::parse_toml(text, path)
    }

    pub fn defaults() -> SharingConfig {
        SharingConfig::parse(DEFAULT_SHARING, "config/sharing.toml (built in)")
            .expect("the built-in sharing file is valid (tested)")
    }

    /// Whether `department` receives `event` on a component described by `ctx`.
    pub fn visible_to(&self, department: &str, event: &Event, ctx: Option<&ComponentCtx>) -> bool {
        if event.department.as_deref() == Some(department) {
            return true;
        }
        let Some(ctx) = ctx else {
            return false;
        };
        if self.owner_sees && ctx.owner_department == department {
            return true;
        }
        if self.maintainer_sees && ctx.maintainer_department == department {
            return true;
        }
        self.shares
            .iter()
            .any(|r| r.department == department && r.matches(&event.event_type, ctx))
    }

    /// Whether `actor` may see `event`: admin sees all; others per [`Self::visible_to`].
    pub fn actor_sees(&self, actor: &Actor, event: &Event, ctx: Option<&ComponentCtx>) -> bool {
        if actor.scope == Scope::Admin {
            return true;
        }
        match &actor.department {
            Some(d) => self.visible_to(d, event, ctx),
            None => false,
        }
    }

    /// Every department that receives `event` (for MQTT topics), among `departments`
    /// plus those named by the component and the rules.
    pub fn recipients(&self, event: &Event, ctx: Option<&ComponentCtx>) -> Vec<String> {
        let mut candidates: Vec<String> =
            self.shares.iter().map(|r| r.department.clone()).collect();
        if let Some(c) = ctx {
            candidates.push(c.owner_department.clone());
            candidates.push(c.maintainer_department.clone());
        }
        if let Some(d) = &event.department {
            candidates.push(d.clone());
        }
        candidates.sort();
        candidates.dedup();
        candidates.retain(|d| !d.is_empty() && self.visible_to(d, event, ctx));
        candidates
    }
}

impl ShareRule {
    fn matches(&self, event_type: &str, ctx: &ComponentCtx) -> bool {
        let any = |list: &[String], f: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|p| f(p))
        };
        any(&self.event_types, &|p| match p.strip_suffix('*') {
            Some(prefix) => event_type.starts_with(prefix),
            None => event_type == p,
        }) && any(&self.component_types, &|p| p == ctx.component_type)
            && any(&self.grid_cells, &|p| ctx.grid_cell.starts_with(p))
            && any(&self.owners, &|p| p == ctx.owner_department)
            && any(&self.maintainers, &|p| p == ctx.maintainer_department)
    }
}
