//! The hub's bearer tokens as the events routes' `Authorizer`.

use crate::registry::RegistryAdmin;
use std::sync::Arc;

/// The hub's tokens for the events routes: the same admin token and issued tokens as the API.
pub(super) struct HubAuth {
    pub(super) registry: Arc<dyn RegistryAdmin>,
    pub(super) admin_token: Option<String>,
}

impl wangge_events::Authorizer for HubAuth {
    fn authorize(&self, bearer: &str) -> Option<wangge_events::model::Actor> {
        use wangge_events::model::Actor;
        use wangge_events::Scope as S;
        if self
            .admin_token
            .as_deref()
            .is_some_and(|a| crate::api::auth::same(a, bearer))
        {
            return Some(Actor {
                name: "admin".to_string(),
                department: None,
                scope: S::Admin,
            });
        }
        let p = self.registry.verify_token(bearer).ok()??;
        Some(Actor {
            name: format!("token:{}", p.token_id),
            department: p.department,
            scope: match p.scope {
                crate::registry::Scope::Read => S::Read,
                crate::registry::Scope::Write => S::Write,
                crate::registry::Scope::Admin => S::Admin,
            },
        })
    }
}
