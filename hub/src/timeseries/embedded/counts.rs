//! Reports counted per sensor for data completeness (the evaluation report), fast over long
//! windows.
//!
//! A report is one timestamp of a sensor, whatever the number of quantities it carried, so the
//! count is `COUNT(DISTINCT ts)` per sensor — a scan of every point. A 30-day report over 100k
//! sensors cannot scan a month of points within its 2 s budget, so whole past days are counted
//! once and kept:
//! - `day_blocks.rs` keeps them, 32 days of a sensor to a row; the first report that needs a
//!   past day counts it (under the writer's lock, so no write can slip between the count and
//!   its mark; ingest waits for at most one day's count).
//! - A write into a past day (an edge's backlog arriving late) removes that day's mark in the
//!   same transaction as its rows, so the next report counts the day again: never stale.
//! - Today, and the partial days at either end of a window, are counted from the points: their
//!   `(series, ts)` rows in key order, deduplicated per sensor here (a sort-free scan; SQL's
//!   `COUNT(DISTINCT)` per sensor would sort every row).
//! - Retention drops a day's counts with its table.
//!
//! The first report of each sensor (`series.first_ts`, the earliest point of its first series)
//! starts the part of a window the sensor was monitored. It is set when the series is created;
//! stores from before the column are backfilled on first use from the oldest day tables.

use super::{db_err, table, EmbeddedStore, DAY_NS};
use crate::timeseries::TsError;
use rusqlite::{params, Connection};
use std::collections::{BTreeMap, HashMap};

/// Creates the count tables and the `series.first_ts` column if missing (at open).
pub(super) fn migrate(conn: &Connection) -> Result<(), TsError> {
    super::day_blocks::migrate(conn)?;
    let has_first: bool = conn
        .query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('series') WHERE name = 'first_ts'",
            [],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    if !has_first {
        conn.execute_batch("ALTER TABLE series ADD COLUMN first_ts INTEGER")
            .map_err(db_err)?;
    }
    Ok(())
}

/// In a write's transaction: `day` got points, so its counts (if kept) are stale.
pub(super) fn invalidate_day(tx: &Connection, day: i64) -> Result<(), TsError> {
    super::day_blocks::invalidate(tx, day)
}

/// In a write's transaction: a new series' earliest point in that write.
pub(super) fn set_first_ts(tx: &Connection, series: i64, ts_ns: i64) -> Result<(), TsError> {
    tx.prepare_cached(
        "UPDATE series SET first_ts = ?2 WHERE id = ?1 AND (first_ts IS NULL OR first_ts > ?2)",
    )
    .and_then(|mut s| s.execute(params![series, ts_ns]))
    .map_err(db_err)?;
    Ok(())
}

/// With retention: `day`'s counts go with its table.
pub(super) fn drop_day(conn: &Connection, day: i64) -> Result<(), TsError> {
    super::day_blocks::drop_day(conn, day)
}

/// Series id → sensor, for counting points by sensor without joining every row.
fn series_sensors(conn: &Connection) -> Result<HashMap<i64, String>, TsError> {
    let mut stmt = conn
        .prepare_cached("SELECT id, sensor FROM series")
        .map_err(db_err)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_err)
}

/// Adds the distinct report timestamps per sensor of `day`'s points in `[from_ns, to_ns)`.
/// Rows come in key order (series, ts): a sensor with one series needs no set; one with
/// several (a report per quantity) gets its timestamps merged and deduplicated.
fn add_points(
    conn: &Connection,
    day: i64,
    (from_ns, to_ns): (i64, i64),
    sensors: &HashMap<i64, String>,
    out: &mut HashMap<String, u64>,
) -> Result<(), TsError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT series, ts FROM {} WHERE ts >= ?1 AND ts < ?2 ORDER BY series, ts",
            table(day)
        ))
        .map_err(db_err)?;
    let mut rows = stmt.query(params![from_ns, to_ns]).map_err(db_err)?;
    let mut per_sensor: HashMap<&str, Vec<i64>> = HashMap::new();
    while let Some(r) = rows.next().map_err(db_err)? {
        let (series, ts): (i64, i64) = (r.get(0).map_err(db_err)?, r.get(1).map_err(db_err)?);
        if let Some(sensor) = sensors.get(&series) {
            per_sensor.entry(sensor.as_str()).or_default().push(ts);
        }
    }
    for (sensor, mut ts) in per_sensor {
        ts.sort_unstable();
        ts.dedup();
        *out.entry(sensor.to_string()).or_default() += ts.len() as u64;
    }
    Ok(())
}

impl EmbeddedStore {
    /// Reports received per sensor in `[from_ns, to_ns)` (distinct timestamps: a report carrying
    /// several quantities counts once), at `now_ns`: whole days before today from the kept
    /// counts, the rest from the points.
    pub fn report_counts(
        &self,
        from_ns: i64,
        to_ns: i64,
        now_ns: i64,
    ) -> Result<HashMap<String, u64>, TsError> {
        let days = {
            let conn = self.reader()?;
            self.days_in(&conn, from_ns, to_ns)?
        };
        let today = now_ns.div_euclid(DAY_NS);
        let whole =
            |day: i64| from_ns <= day * DAY_NS && (day + 1) * DAY_NS <= to_ns && day < today;
        let (whole_days, mut partial): (Vec<i64>, Vec<i64>) =
            days.into_iter().partition(|d| whole(*d));
        let kept = self.keep_counts(&whole_days)?;
        partial.extend(whole_days.iter().filter(|d| !kept.contains(d)));
        let mut out: HashMap<String, u64> = HashMap::new();
        let conn = self.reader()?;
        super::day_blocks::add(&conn, &kept, &mut out)?;
        if !partial.is_empty() {
            let sensors = series_sensors(&conn)?;
            for day in partial {
                let span = (from_ns.max(day * DAY_NS), to_ns.min((day + 1) * DAY_NS));
                add_points(&conn, day, span, &sensors, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Reports per sensor in each of `windows` (each inside one UTC day, as the report's daily
    /// trend asks them): sensor → one count per window, in order. The same counts as
    /// [`Self::report_counts`] per window, but each block of kept counts is read once for
    /// every window in it (a 30-day trend over 100k sensors reads 100k rows, not 3M).
    pub fn report_counts_per_window(
        &self,
        windows: &[(i64, i64)],
        now_ns: i64,
    ) -> Result<HashMap<String, Vec<u64>>, TsError> {
        let (Some(lo), Some(hi)) = (
            windows.iter().map(|w| w.0).min(),
            windows.iter().map(|w| w.1).max(),
        ) else {
            return Ok(HashMap::new());
        };
        let tables: std::collections::BTreeSet<i64> = {
            let conn = self.reader()?;
            self.days_in(&conn, lo, hi)?.into_iter().collect()
        };
        let today = now_ns.div_euclid(DAY_NS);
        let day_of = |(a, _): (i64, i64)| a.div_euclid(DAY_NS);
        let whole = |&(a, b): &(i64, i64)| {
            let day = day_of((a, b));
            a == day * DAY_NS && b == (day + 1) * DAY_NS && day < today
        };
        let whole_days: Vec<i64> = windows
            .iter()
            .filter(|w| whole(w) && tables.contains(&day_of(**w)))
            .map(|w| day_of(*w))
            .collect();
        let kept: std::collections::BTreeSet<i64> =
            self.keep_counts(&whole_days)?.into_iter().collect();
        let mut from_blocks: Vec<(i64, usize)> = Vec::new();
        let mut from_points: Vec<(usize, (i64, i64))> = Vec::new();
        for (i, w) in windows.iter().enumerate() {
            let day = day_of(*w);
            if !tables.contains(&day) || w.1 <= w.0 {
                continue;
            }
            if whole(w) && kept.contains(&day) {
                from_blocks.push((day, i));
            } else {
                from_points.push((i, *w));
            }
        }
        let mut out: HashMap<String, Vec<u64>> = HashMap::new();
        let conn = self.reader()?;
        super::day_blocks::add_per_window(&conn, &from_blocks, windows.len(), &mut out)?;
        if !from_points.is_empty() {
            let sensors = series_sensors(&conn)?;
            for (i, w) in from_points {
                let mut counts = HashMap::new();
                add_points(&conn, day_of(w), w, &sensors, &mut counts)?;
                for (sensor, n) in counts {
                    out.entry(sensor).or_insert_with(|| vec![0; windows.len()])[i] += n;
                }
            }
        }
        Ok(out)
    }

    /// Reports of one sensor in `[from_ns, to_ns)`, from the points: for the short windows the
    /// report excludes (maintenance).
    pub fn report_count(&self, sensor: &str, from_ns: i64, to_ns: i64) -> Result<u64, TsError> {
        let conn = self.reader()?;
        let mut n = 0u64;
        for day in self.days_in(&conn, from_ns, to_ns)? {
            let sql = format!(
                "SELECT COUNT(DISTINCT r.ts) FROM {} r JOIN series s ON s.id = r.series
                 WHERE s.sensor = ?1 AND r.ts >= ?2 AND r.ts < ?3",
                table(day)
            );
            let c: i64 = conn
                .prepare_cached(&sql)
                .and_then(|mut s| s.query_row(params![sensor, from_ns, to_ns], |r| r.get(0)))
                .map_err(db_err)?;
            n += u64::try_from(c).unwrap_or(0);
        }
        Ok(n)
    }

    /// The first report of every sensor that has one (earliest point of any of its series).
    pub fn first_reports(&self) -> Result<HashMap<String, i64>, TsError> {
        self.backfill_first_ts()?;
        let conn = self.reader()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT sensor, MIN(first_ts) FROM series WHERE first_ts IS NOT NULL GROUP BY sensor",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)
    }

    /// Of `days` (whole past days), those whose counts are kept once this returns: the ones
    /// not kept yet are counted, one day at a time under the writer's lock (ingest waits for
    /// one day's count at most), and stored one block at a time; a day written after its count
    /// is left out (counted from its points this time, and again next time).
    fn keep_counts(&self, days: &[i64]) -> Result<Vec<i64>, TsError> {
        let mut kept = Vec::new();
        let mut missing: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        {
            let conn = self.reader()?;
            for &day in days {
                if super::day_blocks::is_kept(&conn, day)? {
                    kept.push(day);
                } else {
                    missing
                        .entry(super::day_blocks::block_of(day).0)
                        .or_default()
                        .push(day);
                }
            }
        }
        for (_, block_days) in missing {
            let mut counted = Vec::new();
            for day in block_days {
                let mut w = self.writer()?;
                if !w.partitions.contains(&day) {
                    continue;
                }
                w.written_past_days.remove(&day);
                let sensors: HashMap<i64, String> = w
                    .series
                    .iter()
                    .flat_map(|(s, ids)| ids.iter().map(move |(_, id)| (*id, s.clone())))
                    .collect();
                let mut counts = HashMap::new();
                add_points(
                    &w.conn,
                    day,
                    (day * DAY_NS, (day + 1) * DAY_NS),
                    &sensors,
                    &mut counts,
                )?;
                counted.push((day, counts));
            }
            let mut w = self.writer()?;
            counted.retain(|(day, _)| !w.written_past_days.contains(day));
            let tx = w.conn.transaction().map_err(db_err)?;
            super::day_blocks::store(&tx, &counted)?;
            tx.commit().map_err(db_err)?;
            kept.extend(counted.iter().map(|(d, _)| *d));
        }
        Ok(kept)
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, super::Writer>, TsError> {
        self.writer
            .lock()
            .map_err(|_| TsError::Store("writer lock poisoned".into()))
    }

    /// Series without `first_ts` (a store from before the column): their earliest point, from
    /// the oldest day table that has one.
    fn backfill_first_ts(&self) -> Result<(), TsError> {
        let mut w = self
            .writer
            .lock()
            .map_err(|_| TsError::Store("writer lock poisoned".into()))?;
        let missing: i64 = w
            .conn
            .query_row(
                "SELECT COUNT(*) FROM series WHERE first_ts IS NULL",
                [],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        if missing == 0 {
            return Ok(());
        }
        let days: Vec<i64> = w.partitions.iter().copied().collect();
        let tx = w.conn.transaction().map_err(db_err)?;
        for day in days {
            tx.execute(
                    &format!(
                        "UPDATE series SET first_ts = (SELECT MIN(ts) FROM {t} WHERE series = series.id)
                         WHERE first_ts IS NULL AND EXISTS (SELECT 1 FROM {t} WHERE series = series.id)",
                        t = table(day)
                    ),
                    [],
                )
            .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeseries::embedded::EmbeddedConfig;
    use crate::timeseries::{StoredReading, TimeSeriesSink};
    use protocol::uplink::{Quality, Reading, ReadingFlags};
    use protocol::{Quantity, Value};

    const S: i64 = 1_000_000_000;

    fn report(sensor: &str, ts_ns: i64) -> Vec<StoredReading> {
        [Quantity::Tilt, Quantity::Battery]
            .into_iter()
            .map(|quantity| StoredReading {
                reading: Reading {
                    sensor: sensor.into(),
                    quantity,
                    value: Value::Float(1.0),
                    ts_ns,
                    quality: Quality::Good,
                    flags: ReadingFlags::default(),
                },
                edge_id: "e".into(),
                component_id: None,
                grid_cell: None,
                department: None,
            })
            .collect()
    }

    #[test]
    fn whole_days_come_from_kept_counts_and_a_late_write_recounts_its_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&EmbeddedConfig::in_dir(dir.path())).unwrap();
        let now = protocol::time::now_ns();
        let today = now.div_euclid(DAY_NS);
        let from = (today - 3) * DAY_NS;
        // One report per hour (two quantities each) over the last three days and today.
        let mut rows = Vec::new();
        let mut t = from;
        while t < now {
            rows.extend(report("A", t));
            t += 3600 * S;
        }
        store.write(&rows).unwrap();
        let want = u64::try_from((now - from + 3600 * S - 1) / (3600 * S)).unwrap();
        let counts = store.report_counts(from, now + 1, now).unwrap();
        assert_eq!(counts["A"], want);
        // The three whole past days are kept now; asking again reads them.
        let kept: i64 = store
            .reader()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM report_days", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 3);
        assert_eq!(store.report_counts(from, now + 1, now).unwrap()["A"], want);
        // A backlog arriving late into a counted day is counted.
        store.write(&report("A", from + 1800 * S)).unwrap();
        assert_eq!(
            store.report_counts(from, now + 1, now).unwrap()["A"],
            want + 1
        );
        // A window starting mid-day counts that day's points from the range only.
        let mid = from + 12 * 3600 * S;
        let part = store.report_counts(mid, now + 1, now).unwrap()["A"];
        assert_eq!(part, want - 12);
        assert_eq!(store.report_count("A", from, from + 3600 * S).unwrap(), 2);
        assert_eq!(store.first_reports().unwrap()["A"], from);
    }

    #[test]
    fn a_store_from_before_first_ts_is_backfilled() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = EmbeddedConfig::in_dir(dir.path());
        let now = protocol::time::now_ns();
        {
            let store = EmbeddedStore::open(&cfg).unwrap();
            store.write(&report("B", now - 7200 * S)).unwrap();
            store.write(&report("B", now - 3600 * S)).unwrap();
        }
        let conn = Connection::open(dir.path().join("timeseries.sqlite")).unwrap();
        conn.execute("UPDATE series SET first_ts = NULL", [])
            .unwrap();
        drop(conn);
        let store = EmbeddedStore::open(&cfg).unwrap();
        assert_eq!(store.first_reports().unwrap()["B"], now - 7200 * S);
    }
}
