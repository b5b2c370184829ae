//! The members' broker accounts in PostgreSQL (`hub_accounts`), for the provisioners.

use crate::broker::mosquitto::{HubAccount, HubAccounts};
use wangge_pg::Pg;

/// [`HubAccounts`] on the cluster's database.
pub struct PgHubAccounts {
    pub(super) pg: Pg,
}

impl HubAccounts for PgHubAccounts {
    fn publish(&self, me: &HubAccount) -> Result<(), String> {
        self.pg
            .execute(
                "INSERT INTO hub_accounts (username, broker_hash) VALUES ($1, $2)
                 ON CONFLICT (username) DO UPDATE SET broker_hash = excluded.broker_hash,
                     updated_at = now()",
                &[&me.username, &me.broker_hash],
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn all(&self) -> Result<Vec<HubAccount>, String> {
        let rows = self
            .pg
            .query(
                "SELECT username, broker_hash FROM hub_accounts ORDER BY username",
                &[],
            )
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .map(|r| HubAccount {
                username: r.get(0),
                broker_hash: r.get(1),
            })
            .collect())
    }
}
