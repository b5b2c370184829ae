//! Department MQTT consumers' credentials (table `mqtt_users`, migration 0004).

use super::{db, exists, field, SqliteRegistry};
use crate::registry::{
    secrets, BrokerAccount, BrokerAccountKind, MqttUser, MqttUserCredentials, RegistryError,
};
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
            "{}{department}.{}",
            crate::broker::DEPARTMENT_USER_PREFIX,
            hex::encode(rand::random::<[u8; 3]>())
        );
        let secret = secrets::generate();
        let hash = secrets::hash(&secret);
        let broker_hash = crate::broker::mosquitto::password_hash(&secret);
        self.write(|tx| {
            if !exists(tx, "departments", "id", department).map_err(db)? {
                return Err(field(
                    "department",
                    format!("unknown department {department:?}"),
                ));
            }
            tx.execute(
                "INSERT INTO mqtt_users(username, department_id, password_hash, broker_hash,
                                        revoked, created_at_ns)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                params![
                    username,
                    department,
                    hash,
                    broker_hash,
                    crate::registry::now_ns()
                ],
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

    pub(super) fn broker_accounts_impl(&self) -> Result<Vec<BrokerAccount>, RegistryError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, NULL, broker_hash FROM edges
                   WHERE revoked = 0 AND broker_hash IS NOT NULL
                 UNION ALL
                 SELECT username, department_id, broker_hash FROM mqtt_users WHERE revoked = 0
                 ORDER BY 1",
            )?;
            let rows = st.query_map([], |r| {
                let department: Option<String> = r.get(1)?;
                Ok(BrokerAccount {
                    username: r.get(0)?,
                    kind: match department {
                        None => BrokerAccountKind::Edge,
                        Some(department_id) => BrokerAccountKind::Department { department_id },
                    },
                    broker_hash: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }
}
