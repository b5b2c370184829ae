//! Department MQTT consumers' credentials (table `mqtt_users`, migration 0004).

use super::*;

impl SqliteRegistry {
    pub(super) fn add_mqtt_user(
        &self,
        department: &str,
    ) -> Result<(String, String), RegistryError> {
        let username = validation::new_mqtt_username(department);
        let secret = secrets::generate();
        let hash = secrets::hash(&secret);
        let broker_hash = crate::broker::mosquitto::password_hash(&secret);
        self.write(|tx| {
            check(tx, &[validation::department(department)])?;
            tx.execute(
                sql::ADD_MQTT_USER,
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
}
