//! A SQLite value in the type of its PostgreSQL column. SQLite stores what it is given; the
//! PostgreSQL schema states what each column holds, so each value is checked against it: an
//! integer flag becomes a BOOLEAN only when it is 0 or 1, a REAL column accepts integers (SQLite
//! stores `1.0` as 1), and anything else is an error naming the column, never a silent cast.

use super::sqlite_source::SqliteValue;
use wangge_pg::ToSql;

/// A parameter of the PostgreSQL insert.
pub type PgParam = Box<dyn ToSql + Sync + Send>;

/// The PostgreSQL column types the hub's schemas use for copied data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    BigInt,
    Boolean,
    Double,
    Text,
    Bytes,
}

impl PgType {
    /// From `information_schema.columns.data_type`.
    pub fn from_data_type(data_type: &str) -> Option<PgType> {
        Some(match data_type {
            "bigint" => PgType::BigInt,
            "boolean" => PgType::Boolean,
            "double precision" => PgType::Double,
            "text" => PgType::Text,
            "bytea" => PgType::Bytes,
            _ => return None,
        })
    }
}

/// `v` as a parameter for a column of type `ty`, or why it cannot be one.
pub fn convert(v: &SqliteValue, ty: PgType) -> Result<PgParam, String> {
    use SqliteValue as V;
    Ok(match (ty, v) {
        (PgType::BigInt, V::Null) => Box::new(None::<i64>),
        (PgType::BigInt, V::Integer(i)) => Box::new(Some(*i)),
        (PgType::Boolean, V::Null) => Box::new(None::<bool>),
        (PgType::Boolean, V::Integer(0)) => Box::new(Some(false)),
        (PgType::Boolean, V::Integer(1)) => Box::new(Some(true)),
        (PgType::Double, V::Null) => Box::new(None::<f64>),
        (PgType::Double, V::Real(f)) => Box::new(Some(*f)),
        (PgType::Double, V::Integer(i)) => Box::new(Some(*i as f64)),
        (PgType::Text, V::Null) => Box::new(None::<String>),
        (PgType::Text, V::Text(s)) => Box::new(Some(s.clone())),
        (PgType::Bytes, V::Null) => Box::new(None::<Vec<u8>>),
        (PgType::Bytes, V::Blob(b)) => Box::new(Some(b.clone())),
        (ty, v) => return Err(format!("{} does not fit a {ty:?} column", describe(v))),
    })
}

/// A constant text value (e.g. `stored_batches.hub_id`).
pub fn text(s: &str) -> PgParam {
    Box::new(s.to_string())
}

fn describe(v: &SqliteValue) -> String {
    match v {
        SqliteValue::Null => "NULL".into(),
        SqliteValue::Integer(i) => format!("integer {i}"),
        SqliteValue::Real(f) => format!("real {f}"),
        SqliteValue::Text(s) => format!("text of {} bytes", s.len()),
        SqliteValue::Blob(b) => format!("blob of {} bytes", b.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_other_than_0_or_1_and_text_in_an_integer_column_are_refused() {
        assert!(convert(&SqliteValue::Integer(2), PgType::Boolean).is_err());
        assert!(convert(&SqliteValue::Text("7".into()), PgType::BigInt).is_err());
        assert!(convert(&SqliteValue::Real(1.5), PgType::BigInt).is_err());
        assert!(convert(&SqliteValue::Integer(1), PgType::Boolean).is_ok());
        assert!(convert(&SqliteValue::Integer(3), PgType::Double).is_ok());
        assert!(convert(&SqliteValue::Null, PgType::Text).is_ok());
    }
}
