//! The copy itself: every prepared table inserted in ONE PostgreSQL transaction, parents first,
//! ids as they were, then each sequence moved past the highest copied id (or SQLite's
//! AUTOINCREMENT high-water mark, so an id deleted on the single node is never reused). Either
//! everything is in the target after the commit or nothing is.
//!
//! `setval` is not transactional: if the commit fails after it, the sequences stay advanced on
//! empty tables, which costs only a gap in the ids.

use super::blobs::Blob;
use super::prepare::{PreparedTable, SequenceReset};
use wangge_pg::{Pg, PgError, ToSql};

/// Parameters PostgreSQL accepts in one statement (its protocol's limit is 65535).
const PARAMS_PER_STATEMENT_MAX: usize = 60_000;
/// Rows in one multi-row INSERT (keeps each statement well inside the statement timeout).
const ROWS_PER_STATEMENT_MAX: usize = 500;

/// `INSERT INTO t (cols) [OVERRIDING SYSTEM VALUE] VALUES (…), (…)` for `rows` rows.
fn insert_sql(t: &PreparedTable, rows: usize) -> String {
    let n = t.columns.len();
    let cols = t
        .columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let values = (0..rows)
        .map(|r| {
            let row = (1..=n)
                .map(|c| format!("${}", r * n + c))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({row})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let overriding = if t.identity {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    format!(
        "INSERT INTO {} ({cols}){overriding} VALUES {values}",
        t.plan.pg
    )
}

/// Rows per INSERT for a table of `columns` columns.
fn chunk_rows(columns: usize) -> usize {
    (PARAMS_PER_STATEMENT_MAX / columns.max(1)).clamp(1, ROWS_PER_STATEMENT_MAX)
}

/// Inserts every table of `tables` and the photos' bytes `blobs`, and resets the sequences, in
/// one transaction.
pub fn copy_all(pg: &Pg, tables: &[PreparedTable], blobs: &[Blob]) -> Result<(), PgError> {
    pg.transaction(async |tx| {
        for b in blobs {
            tx.execute(
                "INSERT INTO attachment_blobs (sha256, bytes) VALUES ($1, $2)",
                &[&b.sha256, &b.bytes],
            )
            .await?;
        }
        for t in tables.iter().filter(|t| !t.rows.is_empty()) {
            for chunk in t.rows.chunks(chunk_rows(t.columns.len())) {
                let sql = insert_sql(t, chunk.len());
                let params: Vec<&(dyn ToSql + Sync)> = chunk
                    .iter()
                    .flat_map(|row| row.iter().map(|p| &**p as &(dyn ToSql + Sync)))
                    .collect();
                tx.execute(&sql, &params).await?;
            }
        }
        for t in tables {
            for reset in &t.resets {
                match reset {
                    SequenceReset::Identity { column, high } if *high > 0 => {
                        tx.execute(
                            "SELECT setval(pg_get_serial_sequence($1, $2), $3)",
                            &[&t.plan.pg, column, high],
                        )
                        .await?;
                    }
                    SequenceReset::Named { sequence, high } if *high > 0 => {
                        tx.execute("SELECT setval($1::text::regclass, $2)", &[sequence, high])
                            .await?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_stays_under_the_parameter_limit() {
        assert_eq!(chunk_rows(20), ROWS_PER_STATEMENT_MAX);
        assert!(chunk_rows(200) * 200 <= PARAMS_PER_STATEMENT_MAX);
        assert_eq!(chunk_rows(0), ROWS_PER_STATEMENT_MAX);
    }
}
