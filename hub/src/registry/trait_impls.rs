//! The registry traits for a back end whose entity files answer each method: one list of the
//! trait methods, written once for both back ends (`sqlite`, `pg`). The invocation site
//! supplies the back end's inherent methods of the same names, its `one`, `all` and `page`
//! (which run a statement of `registry::sql` and decode its rows with `registry::rows`) and its
//! `update_existing`; methods made of those alone are written here once.

/// Writes trait methods that call the inherent method of the same name (in the entity's file)
/// with the same arguments: a line `name(arguments) -> T` is a method returning
/// `Result<T, RegistryError>`. (Without that inherent method the call would be the trait method
/// itself, which rustc refuses as unconditional recursion under `-D warnings`.)
macro_rules! answered_by_entity_files {
    ($reg:ident: $($name:ident($($arg:ident: $ty:ty),*) -> $ok:ty;)*) => {$(
        fn $name(&self $(, $arg: $ty)*) -> Result<$ok, RegistryError> {
            $reg::$name(self $(, $arg)*)
        }
    )*};
}

/// Writes methods answered by one statement of `registry::sql`, its keys the arguments in
/// order (`?1`, …): `name(keys) -> one T = SQL;` returns the row if any, `-> all T` every row.
macro_rules! read_by {
    (@one $item:ty) => { Option<$item> };
    (@all $item:ty) => { Vec<$item> };
    ($($name:ident($($key:ident),*) -> $how:ident $item:ty = $sql:expr;)*) => {$(
        fn $name(&self $(, $key: &str)*) -> Result<read_by!(@$how $item), RegistryError> {
            self.$how($sql, &[$($key),*])
        }
    )*};
}

/// Writes methods that run one statement of `registry::sql` on the row of their key (`?1`):
/// `name(key) = SQL, "what";` is `NotFound("{what} {key}")` if there is no such row.
macro_rules! updated_by {
    ($($name:ident($key:ident) = $sql:expr, $what:expr;)*) => {$(
        fn $name(&self, $key: &str) -> Result<(), RegistryError> {
            self.update_existing($sql, $what, $key)
        }
    )*};
}

/// Writes list methods, each one page of a `registry::sql::Listing` (at most `limit`, at least
/// 1, rows after the key `after`): `name -> item = listing`.
macro_rules! listed_by {
    ($($name:ident -> $item:ty = $listing:expr;)*) => {$(
        fn $name(&self, after: Option<&str>, limit: usize) -> Result<Page<$item>, RegistryError> {
            let limit = limit.max(1);
            let listing = &$listing;
            let items = self.rows_after(listing.sql, after.unwrap_or(""), limit as i64 + 1)?;
            Ok(Page::cut(items, limit, listing.key))
        }
    )*};
}

/// `impl RegistryStore` and `impl RegistryAdmin` for `$reg`.
macro_rules! registry_traits_by_entity_files {
    ($reg:ident) => {
        impl RegistryStore for $reg {
            answered_by_entity_files! { $reg:
                note_unassigned_sensor(sensor_id: &str, edge_id: &str, at_ns: i64) -> ();
                record_edge_status(status: &EdgeStatus) -> Freshness;
                audit_ingest(refusal: &IngestRefusal<'_>) -> bool;
                record_edge_seen(edge_id: &str, at_ns: i64) -> ();
                record_gaps(report: &GapReport<'_>, at_ns: i64) -> ();
            }

            fn edge_credentials(
                &self,
                edge_id: &str,
            ) -> Result<Option<EdgeCredentials>, RegistryError> {
                rows::edge_credentials(self.one(sql::EDGE_CREDENTIALS, &[edge_id])?)
            }

            read_by! {
                sensor_assignment(sensor_id) -> one SensorAssignment = sql::SENSOR_ASSIGNMENT;
                mqtt_user_credentials(username) -> one MqttUserCredentials =
                    sql::MQTT_USER_CREDENTIALS;
                broker_accounts() -> all BrokerAccount = sql::BROKER_ACCOUNTS;
            }
        }

        impl RegistryAdmin for $reg {
            answered_by_entity_files! { $reg:
                preview_component(id: &str, input: &ComponentInput) -> Component;
                set_component_status(id: &str, status: ComponentStatus) -> bool;
                delete_component(id: &str) -> bool;
                stats() -> RegistryStats;
                department_exists(id: &str) -> bool;
                coverage_sensors() -> Vec<CoverageSensor>;
                put_edge_config(config: &NewConfig<'_>) -> (StoredConfig, bool);
                record_config_report(report: &ConfigReport, received_ns: i64) -> bool;
            }

            fn list_components(
                &self,
                f: &ComponentFilter,
            ) -> Result<Page<Component>, RegistryError> {
                let (sql, args) = sql::component_list(f);
                let keys: Vec<&str> = args.iter().map(String::as_str).collect();
                let items = self.all(&sql, &keys)?;
                Ok(Page::cut(items, f.limit.max(1), |c| c.id.clone()))
            }

            fn create_component(&self, input: &ComponentInput) -> Result<Component, RegistryError> {
                let id = non_empty(&input.id).ok_or_else(|| validation::field("id", "required"))?;
                $reg::insert_component(self, &id, input)
            }

            fn put_component(
                &self,
                id: &str,
                input: &ComponentInput,
            ) -> Result<(Component, bool), RegistryError> {
                validation::same_id(id, input)?;
                $reg::replace_component(self, id, input)
            }

            fn put_sensor(
                &self,
                id: &str,
                input: &SensorInput,
            ) -> Result<(Sensor, bool), RegistryError> {
                let sensor = validation::sensor(id, input)?;
                let created = $reg::store_sensor(self, &sensor)?;
                Ok((sensor, created))
            }

            fn add_edge(
                &self,
                edge_id: &str,
                name: Option<&str>,
                site: Option<&str>,
            ) -> Result<String, RegistryError> {
                let new = crate::registry::issued::EdgeSecret::new(edge_id, name, site)?;
                $reg::store_edge_secret(self, &new)?;
                Ok(new.secret.secret)
            }

            fn add_token(
                &self,
                department: Option<&str>,
                scope: Scope,
            ) -> Result<String, RegistryError> {
                let new = crate::registry::issued::NewToken::new(department, scope)?;
                $reg::store_token(self, &new)?;
                Ok(new.token())
            }

            fn add_mqtt_user(&self, department: &str) -> Result<(String, String), RegistryError> {
                let new = crate::registry::issued::NewMqttUser::new(department);
                $reg::store_mqtt_user(self, &new)?;
                Ok((new.username, new.secret.secret))
            }

            fn verify_token(&self, token: &str) -> Result<Option<Principal>, RegistryError> {
                let Some((id, secret)) = rows::token_parts(token) else {
                    return Ok(None);
                };
                let row = self.one(sql::TOKEN, &[id])?;
                Ok(rows::principal(id, secret, row))
            }

            fn edge_config(&self, edge_id: &str) -> Result<Option<EdgeConfigState>, RegistryError> {
                use crate::registry::edge_config::sql;
                if self.one::<()>(sql::EDGE_EXISTS, &[edge_id])?.is_none() {
                    return Ok(None);
                }
                let desired = self.one(sql::DESIRED, &[edge_id])?;
                let applied = self.one(sql::REPORT, &[edge_id])?;
                Ok(Some(EdgeConfigState { desired, applied }))
            }

            fn edge_sensor_maintainers(
                &self,
                edge_id: &str,
            ) -> Result<Vec<Option<String>>, RegistryError> {
                let rows: Vec<(Option<String>,)> =
                    self.all(crate::registry::edge_config::sql::MAINTAINERS, &[edge_id])?;
                Ok(rows.into_iter().map(|(d,)| d).collect())
            }

            updated_by! {
                revoke_edge(edge_id) = sql::REVOKE_EDGE, "edge";
                revoke_token(token_id) = sql::REVOKE_TOKEN, "token";
                revoke_mqtt_user(username) = sql::REVOKE_MQTT_USER, "MQTT user";
            }

            fn import_seed(&self, dir: &Path) -> Result<SeedSummary, SeedError> {
                $reg::import_seed(self, dir)
            }

            fn export_seed(&self, dir: &Path) -> Result<SeedSummary, SeedError> {
                $reg::export_seed(self, dir)
            }

            read_by! {
                component(id) -> one Component = sql::COMPONENT;
                sensor(id) -> one Sensor = sql::SENSOR;
                component_sensors(component_id) -> all Sensor = sql::COMPONENT_SENSORS;
                sensor_contexts() -> all SensorContext = sql::SENSOR_CONTEXTS;
                sensor_context(sensor_id) -> one SensorContext = sql::SENSOR_CONTEXT;
                list_mqtt_users() -> all MqttUser = sql::MQTT_USERS;
            }

            listed_by! {
                list_edges -> Edge = sql::EDGES;
                list_unassigned_sensors -> UnassignedSensor = sql::UNASSIGNED;
                list_grid_cells -> GridCell = sql::GRID_CELLS;
                list_departments -> Department = sql::DEPARTMENTS;
                list_config_deliveries -> ConfigDelivery = crate::registry::edge_config::DELIVERIES;
            }
        }
    };
}
