//! API tokens (table `api_tokens`): issue, verify, revoke. Same format as on SQLite
//! (`wgt_<id>.<secret>`, only the secret's salted hash stored).

use super::*;
use crate::registry::TOKEN_PREFIX;

impl PgRegistry {
    pub(super) fn add_token(
        &self,
        department: Option<&str>,
        scope: Scope,
    ) -> Result<String, RegistryError> {
        validation::token_department(department, scope)?;
        let id = hex::encode(rand::random::<[u8; 6]>());
        let secret = secrets::generate();
        let hash = secrets::hash(&secret);
        self.write(async |tx| {
            let refs: Vec<_> = department.map(validation::department).into_iter().collect();
            check(tx, &refs).await?;
            tx.execute(
                &sql::pg(sql::ADD_TOKEN),
                &[&id, &hash, &department, &scope.name(), &now_ns()],
            )
            .await?;
            Ok(())
        })?;
        Ok(format!("{TOKEN_PREFIX}{id}.{secret}"))
    }
}
