//! Department MQTT consumers' credentials (table `mqtt_users`, migration 0004).

use super::{db, exists, field, SqliteRegistry};
use crate::registry::{secrets, MqttUser, MqttUserCredentials, RegistryError};
use rusqlite::{params, OptionalExtension};

impl SqliteRegistry {
    pub(super) fn mqtt_user_credentials_impl(
        &self,
        username: &str,
    ) -> Result<Option<MqttUserCredentials>, RegistryError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT username, department_id, password_hash, revoked FROM mqtt_users
                 WHERE username = ?1",
            )?
            .query_row([username], |r| {
                Ok(MqttUserCredentials {
                    username: r.get(0)?,
                    department_id: r.get(1)?,
                    password_hash: r.get(2)?,
                    revoked: r.get(3)?,
                })
            })
            .optional()
        })
    }

    pub(super) fn add_mqtt_user_impl(
        &self,
        department: &str,
    ) -> Result<(String, String), RegistryError> {
        let username = format!(
            "{}{department}:{}",
            crate::broker::DEPARTMENT_USER_PREFIX,
            hex::encode(rand::random::<[u8; 3]>())
        );
        let secret = secrets::generate();
        let hash = secrets::hash(&secret);
        self.write(|tx| {
            if !exists(tx, "departments", "id", department).map_err(db)? {
                return Err(field(
                    "department",
                    format!("unknown department {department:?}"),
                ));
            }
            tx.execute(
                "INSERT INTO mqtt_users(username, department_id, password_hash, revoked, created_at_ns)
                 VALUES (?1, ?2, ?3, 0, ?4)",
                params![username, department, hash, crate::registry::now_ns()],
            )
            .map_err(db)
        })?;
        Ok((username, secret))
    }

    pub(super) fn revoke_mqtt_user_impl(&self, username: &str) -> Result<(), RegistryError> {
        let n = self.write(|tx| {
            tx.execute(
                "UPDATE mqtt_users SET revoked = 1 WHERE username = ?1",
                [username],
            )
            .map_err(db)
        })?;
        if n == 0 {
            return Err(RegistryError::NotFound(format!("MQTT user {username}")));
        }
        Ok(())
    }

    pub(super) fn list_mqtt_users_impl(&self) -> Result<Vec<MqttUser>, RegistryError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT username, department_id, revoked, created_at_ns FROM mqtt_users
                 ORDER BY username",
            )?;
            let rows = st.query_map([], |r| {
                Ok(MqttUser {
                    username: r.get(0)?,
                    department_id: r.get(1)?,
                    revoked: r.get(2)?,
                    created_at_ns: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }
}
