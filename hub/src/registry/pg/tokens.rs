//! API tokens (table `api_tokens`): issue, verify, revoke. Same format as on SQLite
//! (`wgt_<id>.<secret>`, only the secret's salted hash stored; `registry::issued`).

use super::*;
use crate::registry::issued::NewToken;

impl PgRegistry {
    pub(super) fn store_token(&self, t: &NewToken<'_>) -> Result<(), RegistryError> {
        self.write(async |tx| {
            check(tx, &t.references()).await?;
            tx.execute(
                &sql::pg(sql::ADD_TOKEN),
                &[
                    &t.id,
                    &t.secret.hash,
                    &t.department,
                    &t.scope.name(),
                    &now_ns(),
                ],
            )
            .await?;
            Ok(())
        })
    }
}
