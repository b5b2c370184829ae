//! One way to read a column from a row of either back end (a `rusqlite::Row` of the embedded
//! stores, a `tokio_postgres::Row` of the shared ones), so a row's decoder is written once for
//! both when the two back ends select the same columns.

/// A value both drivers decode (`String`, `i64`, `f64`, `bool`, `Vec<u8>`, their `Option`s).
pub trait Column: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a> {}

impl<T> Column for T where T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a> {}

/// A row whose columns are read by index; a column of the wrong type (or a NULL where the
/// value is not an `Option`) is the driver's error, never a panic.
pub trait Columns {
    /// The driver's error.
    type Error;

    /// Column `i` (0-based) as a `T`.
    fn column<T: Column>(&self, i: usize) -> Result<T, Self::Error>;

    /// Column `i`, a stored count or counter, as the u64 the models hold (negative never is;
    /// 0 if it were).
    fn count(&self, i: usize) -> Result<u64, Self::Error> {
        Ok(self.column::<i64>(i)?.max(0) as u64)
    }
}

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;

    fn column<T: Column>(&self, i: usize) -> Result<T, rusqlite::Error> {
        self.get(i)
    }
}

impl Columns for tokio_postgres::Row {
    type Error = tokio_postgres::Error;

    fn column<T: Column>(&self, i: usize) -> Result<T, tokio_postgres::Error> {
        self.try_get(i)
    }
}
