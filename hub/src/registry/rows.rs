//! Registry rows to models, one decoder for both back ends: `sqlite` and `pg` select the same
//! columns in the same order (the statements in [`super::sql`]), so a row reads the same way
//! from a `rusqlite::Row` or a `tokio_postgres::Row`.

use super::model::*;
use super::{
    format_ts, BrokerAccount, BrokerAccountKind, CoverageSensor, EdgeCredentials, MqttUser,
    MqttUserCredentials, RegistryError, SensorAssignment, TOKEN_PREFIX,
};
use super::{Freshness, StatusMark};
use protocol::uplink::EdgeStatus;
use wangge_events::columns::{Column, Columns};
use wangge_events::from_columns;

/// A value read from a row the same way on both back ends: the statement that selects it
/// (see [`super::sql`]) names its columns in the order its `from_row` reads them.
pub(super) trait FromRow: Sized {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error>;
}

/// A row only found, its columns not read (`SELECT 1 …`).
impl FromRow for () {
    fn from_row<R: Columns>(_: &R) -> Result<(), R::Error> {
        Ok(())
    }
}

/// One column as it is (e.g. a department id).
impl<A: Column> FromRow for (A,) {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok((r.column(0)?,))
    }
}

/// Four columns as they are (e.g. [`EdgeRow`], [`TokenRow`]).
impl<A: Column, B: Column, C: Column, D: Column> FromRow for (A, B, C, D) {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok((r.column(0)?, r.column(1)?, r.column(2)?, r.column(3)?))
    }
}

/// The status mark stored with an edge (`SELECT epoch, status_counter, status_will_pending`):
/// counters are stored as i64 bit patterns; no status was accepted while NULL.
pub(super) struct StoredMark(Option<StatusMark>);

impl FromRow for StoredMark {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        let (epoch, counter, will): (Option<i64>, Option<i64>, Option<i64>) =
            (r.column(0)?, r.column(1)?, r.column(2)?);
        Ok(StoredMark(epoch.zip(counter).map(|(e, c)| StatusMark {
            epoch: e as u64,
            counter: c as u64,
            will_pending: will.map(|w| w as u64),
        })))
    }
}

impl StoredMark {
    /// How `s` compares with the stored mark, and the mark to store if `s` is accepted.
    pub(super) fn judge(&self, s: &EdgeStatus) -> (Freshness, Option<StatusMark>) {
        let last = self.0.as_ref();
        let fresh = StatusMark::judge(last, s);
        let next = match fresh {
            Freshness::Fresh | Freshness::AnnouncedWill => StatusMark::after(last, s, fresh),
            Freshness::Same | Freshness::Stale => None,
        };
        (fresh, next)
    }
}

/// A row of [`super::sql::COMPONENT_COLUMNS`]; an unknown status reads as `Normal`.
impl FromRow for Component {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        let status = |s: String| ComponentStatus::from_name(&s).unwrap_or(ComponentStatus::Normal);
        Ok(from_columns!(
            r,
            Component {
                id,
                component_type,
                name,
                address,
                lat,
                lon,
                grid_cell,
                owner_department,
                maintainer_department,
                status => status
            }
        ))
    }
}

/// A row of [`super::sql::EDGES`].
impl FromRow for Edge {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        let last_seen = |ns: Option<i64>| ns.map(format_ts);
        Ok(from_columns!(
            r,
            Edge {
                id,
                name,
                site,
                online,
                last_seen => last_seen,
                version,
                backlog_readings => count,
                backlog_bytes => count,
                has_credentials,
                revoked,
                readings_lost => count
            }
        ))
    }
}

/// (id, password_hash, mac_key, revoked): a row of [`super::sql::EDGE_CREDENTIALS`].
pub(super) type EdgeRow = (String, Option<String>, Option<Vec<u8>>, bool);

/// The credentials of an edge row; none while the edge has no secret issued.
pub(super) fn edge_credentials(
    row: Option<EdgeRow>,
) -> Result<Option<EdgeCredentials>, RegistryError> {
    let Some((edge_id, Some(password_hash), Some(key), revoked)) = row else {
        return Ok(None);
    };
    let mac_key: [u8; 32] = key
        .try_into()
        .map_err(|_| RegistryError::Db(format!("edge {edge_id}: mac_key is not 32 bytes")))?;
    Ok(Some(EdgeCredentials {
        edge_id,
        password_hash,
        mac_key,
        revoked,
    }))
}

/// A row of [`super::sql::SENSOR`].
impl FromRow for Sensor {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(from_columns!(
            r,
            Sensor {
                id,
                component_id,
                sensor_type,
                profile,
                address,
                interval_s,
                edge
            }
        ))
    }
}

/// A stored interval as the u32 the rules hold (one beyond it reads as u32::MAX).
fn interval_s(stored: i64) -> u32 {
    u32::try_from(stored).unwrap_or(u32::MAX)
}

/// A stored count or counter as the u64 the models hold (negative never is; 0 if it were).
fn count(stored: i64) -> u64 {
    stored.max(0) as u64
}

/// A row of [`super::sql::SENSOR_CONTEXTS`].
impl FromRow for SensorContext {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(from_columns!(
            r,
            SensorContext {
                sensor_id,
                component_id,
                component_type,
                interval_s => interval_s
            }
        ))
    }
}

/// A row of [`super::sql::SENSOR_ASSIGNMENT`].
impl FromRow for SensorAssignment {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(from_columns!(
            r,
            SensorAssignment {
                sensor_id,
                component_id,
                component_type,
                grid_cell,
                owner_department,
                maintainer_department,
                edge_id
            }
        ))
    }
}

/// A row of [`super::sql::UNASSIGNED`].
impl FromRow for UnassignedSensor {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(from_columns!(
            r,
            UnassignedSensor {
                sensor_id,
                edge_id,
                first_seen => format_ts,
                last_seen => format_ts,
                seen_count => count
            }
        ))
    }
}

/// A row of [`super::sql::COVERAGE_SENSORS`].
impl FromRow for CoverageSensor {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(from_columns!(
            r,
            CoverageSensor {
                sensor_id,
                component_id,
                component_name,
                component_type,
                grid_cell,
                owner_department,
                maintainer_department,
                edge,
                interval_s => interval_s,
                registered_at_ns
            }
        ))
    }
}

/// A row of [`super::sql::GRID_CELLS`].
impl FromRow for GridCell {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(from_columns!(
            r,
            GridCell {
                id,
                name,
                parent,
                lat_min,
                lon_min,
                lat_max,
                lon_max
            }
        ))
    }
}

/// A row of [`super::sql::DEPARTMENTS`].
impl FromRow for Department {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(from_columns!(
            r,
            Department {
                id,
                name,
                duty,
                contact
            }
        ))
    }
}

/// A row of [`super::sql::MQTT_USER_CREDENTIALS`].
impl FromRow for MqttUserCredentials {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(from_columns!(
            r,
            MqttUserCredentials {
                username,
                department_id,
                password_hash,
                revoked
            }
        ))
    }
}

/// A row of [`super::sql::MQTT_USERS`].
impl FromRow for MqttUser {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        Ok(from_columns!(
            r,
            MqttUser {
                username,
                department_id,
                revoked,
                created_at_ns
            }
        ))
    }
}

/// A row of [`super::sql::BROKER_ACCOUNTS`]: an edge has no department.
impl FromRow for BrokerAccount {
    fn from_row<R: Columns>(r: &R) -> Result<Self, R::Error> {
        let kind = |department: Option<String>| match department {
            None => BrokerAccountKind::Edge,
            Some(department_id) => BrokerAccountKind::Department { department_id },
        };
        Ok(from_columns!(
            r,
            BrokerAccount {
                username,
                kind => kind,
                broker_hash
            }
        ))
    }
}

/// (secret_hash, department, scope, revoked): a row of [`super::sql::TOKEN`].
pub(super) type TokenRow = (String, Option<String>, String, bool);

/// `token`'s id and secret (`wgt_<id>.<secret>`); None if it is not of that form.
pub(super) fn token_parts(token: &str) -> Option<(&str, &str)> {
    token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|t| t.split_once('.'))
}

/// The principal of token `id` whose secret is `secret`, given its stored row: none if there
/// is no row, the token is revoked or the secret does not match.
pub(super) fn principal(id: &str, secret: &str, row: Option<TokenRow>) -> Option<Principal> {
    let (hash, department, scope, revoked) = row?;
    if revoked || !super::secrets::verify(&hash, secret) {
        return None;
    }
    Scope::from_name(&scope).map(|scope| Principal {
        token_id: id.to_string(),
        department,
        scope,
    })
}
