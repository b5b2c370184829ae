//! Department MQTT consumers' credentials (table `mqtt_users`).

use super::*;
use crate::registry::BrokerAccountKind;

impl PgRegistry {
    pub(super) fn mqtt_user_credentials(
        &self,
        username: &str,
    ) -> Result<Option<MqttUserCredentials>, RegistryError> {
        self.one(
            "SELECT username, department_id, password_hash, revoked FROM mqtt_users
             WHERE username = $1",
            username,
            |r| {
                Ok(MqttUserCredentials {
                    username: r.try_get(0)?,
                    department_id: r.try_get(1)?,
                    password_hash: r.try_get(2)?,
                    revoked: r.try_get(3)?,
                })
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
        self.write(async |tx| {
            if !exists(tx, "departments", "id", department).await? {
                return Err(
                    field("department", format!("unknown department {department:?}")).into(),
                );
            }
            tx.execute(
                "INSERT INTO mqtt_users(username, department_id, password_hash, broker_hash,
                                        revoked, created_at_ns)
                 VALUES ($1, $2, $3, $4, false, $5)",
                &[&username, &department, &hash, &broker_hash, &now_ns()],
            )
            .await?;
            Ok(())
        })?;
        Ok((username, secret))
    }

    pub(super) fn revoke_mqtt_user(&self, username: &str) -> Result<(), RegistryError> {
        self.update_existing(
            "UPDATE mqtt_users SET revoked = true WHERE username = $1",
            "MQTT user",
            username,
        )
    }

    pub(super) fn list_mqtt_users(&self) -> Result<Vec<MqttUser>, RegistryError> {
        self.all(
            "SELECT username, department_id, revoked, created_at_ns FROM mqtt_users
             ORDER BY username",
            &[],
            |r| {
                Ok(MqttUser {
                    username: r.try_get(0)?,
                    department_id: r.try_get(1)?,
                    revoked: r.try_get(2)?,
                    created_at_ns: r.try_get(3)?,
                })
            },
        )
    }

    pub(super) fn broker_accounts(&self) -> Result<Vec<BrokerAccount>, RegistryError> {
        self.all(
            "SELECT id, NULL::TEXT, broker_hash FROM edges
               WHERE NOT revoked AND broker_hash IS NOT NULL
             UNION ALL
             SELECT username, department_id, broker_hash FROM mqtt_users WHERE NOT revoked
             ORDER BY 1",
            &[],
            |r| {
                let department: Option<String> = r.try_get(1)?;
                Ok(BrokerAccount {
                    username: r.try_get(0)?,
                    kind: match department {
                        None => BrokerAccountKind::Edge,
                        Some(department_id) => BrokerAccountKind::Department { department_id },
                    },
                    broker_hash: r.try_get(2)?,
                })
            },
        )
    }
}
