//! The kept per-day report counts behind data completeness, 32 days to a row:
//! `report_sensor_blocks(block, sensor, counts)` where `block` = day / 32 and `counts` is 32
//! little-endian u32, one slot per day. A 30-day window over 100k sensors then reads ≈ 200k
//! rows instead of 3 M (one per sensor-day). `report_days(day)` marks the days whose slots are
//! complete; only marked days are ever read, so a slot left by a day that lost its mark (a late
//! write, retention) is never used until its day is counted again.

use super::{db_err, TsError};
use rusqlite::{params, Connection};
use std::collections::{BTreeMap, HashMap};

const BLOCK_DAYS: i64 = 32;
const BLOB_BYTES: usize = BLOCK_DAYS as usize * 4;

pub(super) fn block_of(day: i64) -> (i64, usize) {
    (
        day.div_euclid(BLOCK_DAYS),
        day.rem_euclid(BLOCK_DAYS) as usize,
    )
}

fn slot(blob: &[u8], i: usize) -> u64 {
    blob.get(i * 4..i * 4 + 4).map_or(0, |b| {
        u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    })
}

/// Creates the tables (at open); drops the earlier one-row-per-sensor-day layouts.
pub(super) fn migrate(conn: &Connection) -> Result<(), TsError> {
    conn.execute_batch(
        "DROP TABLE IF EXISTS report_day_counts;
         DROP TABLE IF EXISTS report_sensor_days;
         CREATE TABLE IF NOT EXISTS report_days (day INTEGER PRIMARY KEY);
         CREATE TABLE IF NOT EXISTS report_sensor_blocks (
             block INTEGER NOT NULL, sensor TEXT NOT NULL, counts BLOB NOT NULL,
             PRIMARY KEY (block, sensor)) WITHOUT ROWID;",
    )
    .map_err(db_err)?;
    // Stores from before the blocks kept marks for the dropped layout: count those days again.
    let blocks: i64 = conn
        .query_row("SELECT COUNT(*) FROM report_sensor_blocks", [], |r| {
            r.get(0)
        })
        .map_err(db_err)?;
    if blocks == 0 {
        conn.execute("DELETE FROM report_days", [])
            .map_err(db_err)?;
    }
    Ok(())
}

/// True if `day`'s counts are kept.
pub(super) fn is_kept(conn: &Connection, day: i64) -> Result<bool, TsError> {
    conn.prepare_cached("SELECT COUNT(*) FROM report_days WHERE day = ?1")
        .and_then(|mut s| s.query_row([day], |r| r.get::<_, i64>(0)))
        .map(|n| n > 0)
        .map_err(db_err)
}

/// In a write's transaction: `day` got points, so its counts (if kept) are stale.
pub(super) fn invalidate(tx: &Connection, day: i64) -> Result<(), TsError> {
    tx.prepare_cached("DELETE FROM report_days WHERE day = ?1")
        .and_then(|mut s| s.execute([day]))
        .map_err(db_err)?;
    Ok(())
}

/// With retention: `day` is gone; a block goes with its last day.
pub(super) fn drop_day(conn: &Connection, day: i64) -> Result<(), TsError> {
    invalidate(conn, day)?;
    let (block, i) = block_of(day);
    if i as i64 == BLOCK_DAYS - 1 {
        conn.execute(
            "DELETE FROM report_sensor_blocks WHERE block <= ?1",
            [block],
        )
        .map_err(db_err)?;
    }
    Ok(())
}

/// In one transaction: each `(day, counts)` (days of one block) becomes that day's slot (0 for
/// every other sensor of the block) and the day is marked kept; the block's rows are read and
/// written once, whatever the number of days.
pub(super) fn store(tx: &Connection, days: &[(i64, HashMap<String, u64>)]) -> Result<(), TsError> {
    let Some(block) = days.first().map(|(d, _)| block_of(*d).0) else {
        return Ok(());
    };
    debug_assert!(days.iter().all(|(d, _)| block_of(*d).0 == block));
    let mut rows: HashMap<String, Vec<u8>> = HashMap::new();
    {
        let mut st = tx
            .prepare_cached("SELECT sensor, counts FROM report_sensor_blocks WHERE block = ?1")
            .map_err(db_err)?;
        let found = st
            .query_map([block], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(db_err)?;
        for row in found {
            let (sensor, blob) = row.map_err(db_err)?;
            rows.insert(sensor, blob);
        }
    }
    for (_, counts) in days {
        for sensor in counts.keys() {
            rows.entry(sensor.clone()).or_default();
        }
    }
    let mut put = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO report_sensor_blocks (block, sensor, counts) VALUES (?1, ?2, ?3)",
        )
        .map_err(db_err)?;
    for (sensor, blob) in rows.iter_mut() {
        let before = blob.clone();
        blob.resize(BLOB_BYTES, 0);
        for (day, counts) in days {
            let i = block_of(*day).1;
            let n = counts.get(sensor).copied().unwrap_or(0);
            let v = u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
            blob[i * 4..i * 4 + 4].copy_from_slice(&v);
        }
        if *blob != before {
            put.execute(params![block, sensor, &blob[..]])
                .map_err(db_err)?;
        }
    }
    for (day, _) in days {
        tx.execute(
            "INSERT OR REPLACE INTO report_days (day) VALUES (?1)",
            [day],
        )
        .map_err(db_err)?;
    }
    Ok(())
}

/// Adds the kept counts of `days` (each kept) per sensor.
pub(super) fn add(
    conn: &Connection,
    days: &[i64],
    out: &mut HashMap<String, u64>,
) -> Result<(), TsError> {
    let mut per_block: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for &d in days {
        let (b, i) = block_of(d);
        per_block.entry(b).or_default().push(i);
    }
    let mut st = conn
        .prepare_cached("SELECT sensor, counts FROM report_sensor_blocks WHERE block = ?1")
        .map_err(db_err)?;
    for (block, slots) in per_block {
        let mut rows = st.query([block]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let blob = r
                .get_ref(1)
                .map_err(db_err)?
                .as_blob()
                .map_err(|e| TsError::Store(format!("report_sensor_blocks.counts: {e}")))?;
            let n: u64 = slots.iter().map(|&i| slot(blob, i)).sum();
            if n == 0 {
                continue;
            }
            let sensor = r
                .get_ref(0)
                .map_err(db_err)?
                .as_str()
                .map_err(|e| TsError::Store(format!("report_sensor_blocks.sensor: {e}")))?;
            match out.get_mut(sensor) {
                Some(v) => *v += n,
                None => {
                    out.insert(sensor.to_string(), n);
                }
            }
        }
    }
    Ok(())
}

/// Adds the kept counts of `days` (day, the window it answers) to `out`: sensor → one count per
/// window (`windows` of them). Each block is read once, whatever the number of its days asked.
pub(super) fn add_per_window(
    conn: &Connection,
    days: &[(i64, usize)],
    windows: usize,
    out: &mut HashMap<String, Vec<u64>>,
) -> Result<(), TsError> {
    let mut per_block: BTreeMap<i64, Vec<(usize, usize)>> = BTreeMap::new();
    for &(d, window) in days {
        let (b, i) = block_of(d);
        per_block.entry(b).or_default().push((i, window));
    }
    let mut st = conn
        .prepare_cached("SELECT sensor, counts FROM report_sensor_blocks WHERE block = ?1")
        .map_err(db_err)?;
    for (block, slots) in per_block {
        let mut rows = st.query([block]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let blob = r
                .get_ref(1)
                .map_err(db_err)?
                .as_blob()
                .map_err(|e| TsError::Store(format!("report_sensor_blocks.counts: {e}")))?;
            if slots.iter().all(|&(i, _)| slot(blob, i) == 0) {
                continue;
            }
            let sensor = r
                .get_ref(0)
                .map_err(db_err)?
                .as_str()
                .map_err(|e| TsError::Store(format!("report_sensor_blocks.sensor: {e}")))?;
            let v = match out.get_mut(sensor) {
                Some(v) => v,
                None => out
                    .entry(sensor.to_string())
                    .or_insert_with(|| vec![0; windows]),
            };
            for &(i, window) in &slots {
                v[window] += slot(blob, i);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
        pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    }

    #[test]
    fn days_of_a_block_are_kept_in_one_row_per_sensor_and_a_recount_replaces_a_slot() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let (d1, d2) = (64 * 32 + 3, 64 * 32 + 4);
        store(
            &conn,
            &[
                (d1, counts(&[("A", 10), ("B", 5)])),
                (d2, counts(&[("A", 7)])),
            ],
        )
        .unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM report_sensor_blocks", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(rows, 2);
        assert!(is_kept(&conn, d1).unwrap() && is_kept(&conn, d2).unwrap());
        let mut out = HashMap::new();
        add(&conn, &[d1, d2], &mut out).unwrap();
        assert_eq!(out, counts(&[("A", 17), ("B", 5)]));
        // Counted again after a late write: B has no report that day any more in this count.
        invalidate(&conn, d1).unwrap();
        assert!(!is_kept(&conn, d1).unwrap());
        store(&conn, &[(d1, counts(&[("A", 11)]))]).unwrap();
        let mut out = HashMap::new();
        add(&conn, &[d1], &mut out).unwrap();
        assert_eq!(out, counts(&[("A", 11)]));
        // Retention: the block goes with its last day.
        drop_day(&conn, 64 * 32 + 31).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM report_sensor_blocks", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(rows, 0);
    }
}
