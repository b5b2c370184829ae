//! Department MQTT consumers' credentials (table `mqtt_users`, migration 0004).

use super::*;
use crate::registry::issued::NewMqttUser;

impl SqliteRegistry {
    pub(super) fn store_mqtt_user(&self, u: &NewMqttUser<'_>) -> Result<(), RegistryError> {
        self.write(|tx| {
            check(tx, &[validation::department(u.department)])?;
            tx.execute(
                sql::ADD_MQTT_USER,
                params![
                    u.username,
                    u.department,
                    u.secret.hash,
                    u.broker_hash,
                    now_ns()
                ],
            )
            .map_err(db)?;
            Ok(())
        })
    }
}
