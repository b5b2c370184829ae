//! API tokens (table `api_tokens`): issue, verify, revoke.

use super::*;
use crate::registry::TOKEN_PREFIX;

impl SqliteRegistry {
    pub(super) fn add_token(
        &self,
        department: Option<&str>,
        scope: Scope,
    ) -> Result<String, RegistryError> {
        validation::token_department(department, scope)?;
        let id = hex::encode(rand::random::<[u8; 6]>());
        let secret = secrets::generate();
        let hash = secrets::hash(&secret);
        self.write(|tx| {
            let refs: Vec<_> = department.map(validation::department).into_iter().collect();
            check(tx, &refs)?;
            tx.execute(
                sql::ADD_TOKEN,
                params![id, hash, department, scope.name(), now_ns()],
            )
            .map_err(db)
        })?;
        Ok(format!("{TOKEN_PREFIX}{id}.{secret}"))
    }
}
