//! Department MQTT consumers' credentials (table `mqtt_users`).

use super::*;
use crate::registry::issued::NewMqttUser;

impl PgRegistry {
    pub(super) fn store_mqtt_user(&self, u: &NewMqttUser<'_>) -> Result<(), RegistryError> {
        self.write(async |tx| {
            check(tx, &[validation::department(u.department)]).await?;
            tx.execute(
                &sql::pg(sql::ADD_MQTT_USER),
                &[
                    &u.username,
                    &u.department,
                    &u.secret.hash,
                    &u.broker_hash,
                    &now_ns(),
                ],
            )
            .await?;
            Ok(())
        })
    }
}
