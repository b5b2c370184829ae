//! Department MQTT consumers' credentials (table `mqtt_users`).

use super::*;

impl PgRegistry {
    pub(super) fn add_mqtt_user(
        &self,
        department: &str,
    ) -> Result<(String, String), RegistryError> {
        let username = validation::new_mqtt_username(department);
        let secret = secrets::generate();
        let hash = secrets::hash(&secret);
        let broker_hash = crate::broker::mosquitto::password_hash(&secret);
        self.write(async |tx| {
            check(tx, &[validation::department(department)]).await?;
            tx.execute(
                &sql::pg(sql::ADD_MQTT_USER),
                &[&username, &department, &hash, &broker_hash, &now_ns()],
            )
            .await?;
            Ok(())
        })?;
        Ok((username, secret))
    }
}
