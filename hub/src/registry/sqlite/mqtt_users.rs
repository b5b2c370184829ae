//! Department MQTT consumers' credentials (table `mqtt_users`, migration 0004).

use super::*;
use crate::registry::BrokerAccountKind;

impl SqliteRegistry {
    pub(super) fn mqtt_user_credentials(
        &self,
        username: &str,
    ) -> Result<Option<MqttUserCredentials>, RegistryError> {
        self.one(
            "SELECT username, department_id, password_hash, revoked FROM mqtt_users
             WHERE username = ?1",
            username,
            |r| {
                Ok(from_columns!(
                    r,
                    MqttUserCredentials {
                        username,
                        department_id,
                        password_hash,
                        revoked
                    }
                ))
            },
        )
    }

    pub(super) fn add_mqtt_user(
        &self,
        department: &str,
    ) -> Result<(String, String), RegistryError> {
        let username = crate::registry::validation::new_mqtt_username(department);
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

    pub(super) fn revoke_mqtt_user(&self, username: &str) -> Result<(), RegistryError> {
        self.update_existing(
            "UPDATE mqtt_users SET revoked = 1 WHERE username = ?1",
            "MQTT user",
            username,
        )
    }

    pub(super) fn list_mqtt_users(&self) -> Result<Vec<MqttUser>, RegistryError> {
        self.all(
            "SELECT username, department_id, revoked, created_at_ns FROM mqtt_users
             ORDER BY username",
            [],
            |r| {
                Ok(from_columns!(
                    r,
                    MqttUser {
                        username,
                        department_id,
                        revoked,
                        created_at_ns
                    }
                ))
            },
        )
    }

    pub(super) fn broker_accounts(&self) -> Result<Vec<BrokerAccount>, RegistryError> {
        self.all(
            "SELECT id, NULL, broker_hash FROM edges
               WHERE revoked = 0 AND broker_hash IS NOT NULL
             UNION ALL
             SELECT username, department_id, broker_hash FROM mqtt_users WHERE revoked = 0
             ORDER BY 1",
            [],
            |r| {
                let department: Option<String> = r.get(1)?;
                Ok(BrokerAccount {
                    username: r.get(0)?,
                    kind: match department {
                        None => BrokerAccountKind::Edge,
                        Some(department_id) => BrokerAccountKind::Department { department_id },
                    },
                    broker_hash: r.get(2)?,
                })
            },
        )
    }
}
