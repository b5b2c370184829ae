//! API tokens (table `api_tokens`): issue, verify, revoke (`registry::issued`).

use super::*;
use crate::registry::issued::NewToken;

impl SqliteRegistry {
    pub(super) fn store_token(&self, t: &NewToken<'_>) -> Result<(), RegistryError> {
        self.write(|tx| {
            check(tx, &t.references())?;
            tx.execute(
                sql::ADD_TOKEN,
                params![t.id, t.secret.hash, t.department, t.scope.name(), now_ns()],
            )
            .map_err(db)?;
            Ok(())
        })
    }
}
