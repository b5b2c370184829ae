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
        crate::registry::validation::token_department(department, scope)?;
        let id = hex::encode(rand::random::<[u8; 6]>());
        let secret = secrets::generate();
        let hash = secrets::hash(&secret);
        self.write(async |tx| {
            if let Some(d) = department {
                if !exists(tx, "departments", "id", d).await? {
                    return Err(field("department", format!("unknown department {d:?}")).into());
                }
            }
            tx.execute(
                "INSERT INTO api_tokens(id, secret_hash, department, scope, created_at_ns)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&id, &hash, &department, &scope.name(), &now_ns()],
            )
            .await?;
            Ok(())
        })?;
        Ok(format!("{TOKEN_PREFIX}{id}.{secret}"))
    }

    pub(super) fn verify_token(&self, token: &str) -> Result<Option<Principal>, RegistryError> {
        let Some((id, secret)) = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|t| t.split_once('.'))
        else {
            return Ok(None);
        };
        let row: Option<(String, Option<String>, String, bool)> = self.one(
            "SELECT secret_hash, department, scope, revoked FROM api_tokens WHERE id = $1",
            id,
            |r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)),
        )?;
        let Some((hash, department, scope, revoked)) = row else {
            return Ok(None);
        };
        if revoked || !secrets::verify(&hash, secret) {
            return Ok(None);
        }
        Ok(Scope::from_name(&scope).map(|scope| Principal {
            token_id: id.to_string(),
            department,
            scope,
        }))
    }

    pub(super) fn revoke_token(&self, token_id: &str) -> Result<(), RegistryError> {
        self.update_existing(
            "UPDATE api_tokens SET revoked = true WHERE id = $1",
            "token",
            token_id,
        )
    }
}
