//! The embedded time-series store: SQLite (WAL) under the data dir, one table per UTC day.
//!
//! Layout, chosen for the insert pattern (see README "Embedded store: why this layout"):
//! - `series(id, sensor, quantity)` maps each (sensor, quantity) to a small integer, cached in
//!   memory, so a row is four integers/reals instead of carrying the sensor string.
//! - readings live in `r_<day>` tables (`day` = days since the Unix epoch, UTC),
//!   `PRIMARY KEY (series, ts) WITHOUT ROWID`: a series' points are contiguous for range queries
//!   and `INSERT OR IGNORE` on the key makes readings idempotent on (sensor, quantity, ts).
//!   Partitioning by day keeps the B-tree that takes the inserts small (the cost of inserting in
//!   time order into a sensor-keyed tree grows with its size), and retention is `DROP TABLE`.
//! - every `write` is one transaction with its rows sorted by (day, series, ts), so consecutive
//!   rows of a series land on the same leaf page; the ingest path groups several batches per
//!   `write` (group commit), one fsync per group.

use super::{Bucket, Point, StoredReading, TimeSeriesQuery, TimeSeriesSink, TsError};
use protocol::uplink::Quality;
use protocol::Quantity;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

mod counts;
mod day_blocks;

const DAY_NS: i64 = 86_400 * 1_000_000_000;
const FILE_NAME: &str = "timeseries.sqlite";
/// Page cache of the reader connection (chart and API queries), MiB.
const READER_CACHE_MIB: i64 = 8;
/// SQLite memory allowed beyond the writer's cache, for every other connection of the hub
/// (time-series reader, registry, ingest dedup, events) and statements, MiB. Under the limit
/// they share pages with the writer's cache, so this is less than the sum of their sizes.
const OTHER_CONNECTIONS_MIB: i64 = 8;

/// Bound on all SQLite memory in the process, bytes: `PRAGMA soft_heap_limit`.
///
/// Why: the bundled SQLite is built with `SQLITE_ENABLE_MEMORY_MANAGEMENT`, which makes every
/// connection of the process share one page-cache group; a page freed by one connection's
/// limit is recycled by another, and the group as a whole grows to the sum of every
/// connection's `cache_size` (writer 32 + reader 8 + registry 4 × 2 + dedup 2 + events …), slowly,
/// as the busy writer steals the idle connections' pages. The soak showed that creep (≈ 10 MiB
/// over 5 min after the writer's own cache was full). Under the soft limit SQLite recycles
/// instead of allocating, so its memory stays at ≈ this once full: `cache_mib` + 8 MiB.
fn sqlite_memory_limit_bytes(cache_mib: u32) -> i64 {
    (i64::from(cache_mib) + OTHER_CONNECTIONS_MIB) << 20
}

/// Embedded store settings (`[timeseries.embedded]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// Directory of `timeseries.sqlite`. Default `./data`.
    pub data_dir: PathBuf,
    /// Readings older than this are deleted (whole days). Default 90.
    pub retention_days: u32,
    /// `full` (default: an acked reading survives power loss) or `normal` (survives a crash of
    /// the hub process, not of the machine; faster).
    pub synchronous: Synchronous,
    /// SQLite page cache of the writer, MiB. Default 32. The cache fills with the pages the
    /// inserts touch and then stays full: it is part of the hub's resident memory (≈ 1.1 ×
    /// this, with SQLite's page headers), reached after ≈ 2.5 min at 8 000 readings/s over
    /// 40 000 series. More only helps while it holds the last leaf page of every series;
    /// at 40 000 series that is ≈ 160 MiB, so beyond that the OS page cache serves the misses.
    /// All SQLite memory of the hub is bounded at this + 8 MiB (`sqlite_memory_limit_bytes`).
    pub cache_mib: u32,
}

/// SQLite `synchronous` pragma in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    #[default]
    Full,
    Normal,
}

impl EmbeddedConfig {
    /// The defaults, with `data_dir` set to `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> EmbeddedConfig {
        EmbeddedConfig {
            data_dir: dir.into(),
            retention_days: 90,
            synchronous: Synchronous::Full,
            cache_mib: 32,
        }
    }
}

impl Default for EmbeddedConfig {
    /// Data under `./data`.
    fn default() -> Self {
        EmbeddedConfig::in_dir("./data")
    }
}

/// The embedded store. One writer connection and one reader connection (WAL lets queries run
/// while a batch commits).
pub struct EmbeddedStore {
    writer: Mutex<Writer>,
    reader: Mutex<Connection>,
    retention_days: u32,
}

struct Writer {
    conn: Connection,
    /// sensor → (quantity code, series id); looked up by `&str` without allocating.
    series: HashMap<String, Vec<(u8, i64)>>,
    partitions: BTreeSet<i64>,
    /// Day on which retention last ran; it runs again when the day changes.
    retention_day: i64,
    /// Past days written since the report counts last counted them (`embedded/counts.rs`):
    /// a count taken before such a write is not kept.
    written_past_days: BTreeSet<i64>,
}

fn db_err(e: rusqlite::Error) -> TsError {
    TsError::Store(e.to_string())
}

fn table(day: i64) -> String {
    // Days before 1970 are negative; keep the name a valid identifier.
    if day < 0 {
        format!("r_m{}", -day)
    } else {
        format!("r_{day}")
    }
}

/// Rows per multi-row INSERT statement (4 parameters each; SQLite allows 32 766).
const ROWS_PER_INSERT: usize = 128;

fn insert_sql(day: i64, rows: usize) -> String {
    let mut sql = format!(
        "INSERT OR IGNORE INTO {} (series, ts, value, quality) VALUES ",
        table(day)
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?)");
    }
    sql
}

fn quality_code(q: Quality) -> i64 {
    match q {
        Quality::Good => 0,
        Quality::Suspect => 1,
        Quality::Bad => 2,
    }
}

fn quality_of(code: i64) -> Quality {
    match code {
        0 => Quality::Good,
        1 => Quality::Suspect,
        _ => Quality::Bad,
    }
}

use protocol::time::now_ns;

fn list_partitions(conn: &Connection) -> Result<BTreeSet<i64>, TsError> {
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'r\\_%' ESCAPE '\\'",
        )
        .map_err(db_err)?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(db_err)?;
    let mut out = BTreeSet::new();
    for n in names {
        let n = n.map_err(db_err)?;
        let day = match n.strip_prefix("r_m") {
            Some(neg) => neg.parse::<i64>().map(|d| -d),
            None => n[2..].parse::<i64>(),
        };
        if let Ok(d) = day {
            out.insert(d);
        }
    }
    Ok(out)
}

impl EmbeddedStore {
    /// Opens (creating if needed) `<data_dir>/timeseries.sqlite` and applies retention.
    pub fn open(cfg: &EmbeddedConfig) -> Result<Self, TsError> {
        if cfg.retention_days == 0 {
            return Err(TsError::Store(
                "timeseries.embedded.retention_days must be > 0".into(),
            ));
        }
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            TsError::Store(format!(
                "cannot create data dir {}: {e}",
                cfg.data_dir.display()
            ))
        })?;
        let path = cfg.data_dir.join(FILE_NAME);
        let conn = Connection::open(&path).map_err(db_err)?;
        let sync = match cfg.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {sync};
             PRAGMA cache_size = -{};
             PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = 16384;
             PRAGMA soft_heap_limit = {};
             CREATE TABLE IF NOT EXISTS series (
                 id INTEGER PRIMARY KEY,
                 sensor TEXT NOT NULL,
                 quantity INTEGER NOT NULL,
                 UNIQUE (sensor, quantity)
             );",
            u64::from(cfg.cache_mib) * 1024,
            sqlite_memory_limit_bytes(cfg.cache_mib)
        ))
        .map_err(db_err)?;
        counts::migrate(&conn)?;
        let mut series = HashMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT id, sensor, quantity FROM series")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u8>(2)?,
                    ))
                })
                .map_err(db_err)?;
            for row in rows {
                let (id, sensor, q) = row.map_err(db_err)?;
                series.entry(sensor).or_insert_with(Vec::new).push((q, id));
            }
        }
        let partitions = list_partitions(&conn)?;
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err)?;
        reader
            .execute_batch(&format!(
                "PRAGMA cache_size = -{};",
                READER_CACHE_MIB * 1024
            ))
            .map_err(db_err)?;
        let store = EmbeddedStore {
            writer: Mutex::new(Writer {
                conn,
                series,
                partitions,
                retention_day: i64::MIN,
                written_past_days: BTreeSet::new(),
            }),
            reader: Mutex::new(reader),
            retention_days: cfg.retention_days,
        };
        store.enforce_retention(now_ns())?;
        Ok(store)
    }

    /// The oldest day (days since epoch) kept at `now_ns`.
    fn first_kept_day(&self, now_ns: i64) -> i64 {
        now_ns.div_euclid(DAY_NS) - i64::from(self.retention_days)
    }

    /// Drops the day tables that fell out of retention at `now_ns`. Runs at open and whenever
    /// a write sees a new day; callable directly (tests, maintenance).
    pub fn enforce_retention(&self, now_ns: i64) -> Result<usize, TsError> {
        let mut w = self
            .writer
            .lock()
            .map_err(|_| TsError::Store("writer lock poisoned".into()))?;
        self.enforce_retention_locked(&mut w, now_ns)
    }

    fn enforce_retention_locked(&self, w: &mut Writer, now_ns: i64) -> Result<usize, TsError> {
        let first = self.first_kept_day(now_ns);
        let old: Vec<i64> = w.partitions.range(..first).copied().collect();
        for day in &old {
            w.conn
                .execute_batch(&format!("DROP TABLE IF EXISTS {}", table(*day)))
                .map_err(db_err)?;
            counts::drop_day(&w.conn, *day)?;
            w.partitions.remove(day);
        }
        // Bounded by the retention: only kept days can be in it.
        w.written_past_days.retain(|d| *d >= first);
        w.retention_day = now_ns.div_euclid(DAY_NS);
        if !old.is_empty() {
            tracing::info!(days = old.len(), "time-series retention dropped old days");
        }
        Ok(old.len())
    }

    fn write_rows(&self, readings: &[StoredReading]) -> Result<(), TsError> {
        let now = now_ns();
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| TsError::Store("writer lock poisoned".into()))?;
        let w = &mut *guard;
        if now.div_euclid(DAY_NS) != w.retention_day {
            self.enforce_retention_locked(w, now)?;
        }
        let first_kept = self.first_kept_day(now);
        let tx = w.conn.transaction().map_err(db_err)?;
        let mut new_series: Vec<((String, u8), i64)> = Vec::new();
        // (day, series, ts, value, quality)
        let mut rows: Vec<(i64, i64, i64, f64, i64)> = Vec::with_capacity(readings.len());
        for r in readings {
            let rd = &r.reading;
            let day = rd.ts_ns.div_euclid(DAY_NS);
            if day < first_kept {
                continue; // already out of retention: storing it would be deleted next run
            }
            let code = rd.quantity.code();
            let cached = w
                .series
                .get(rd.sensor.as_str())
                .and_then(|v| v.iter().find(|(q, _)| *q == code))
                .map(|(_, id)| *id);
            let id = match cached {
                Some(id) => id,
                None => match new_series
                    .iter()
                    .find(|((s, q), _)| *q == code && s == rd.sensor.as_str())
                {
                    Some((_, id)) => *id,
                    None => {
                        let sensor = rd.sensor.as_str();
                        tx.execute(
                            "INSERT OR IGNORE INTO series (sensor, quantity) VALUES (?1, ?2)",
                            params![sensor, code],
                        )
                        .map_err(db_err)?;
                        let id: i64 = tx
                            .query_row(
                                "SELECT id FROM series WHERE sensor = ?1 AND quantity = ?2",
                                params![sensor, code],
                                |r| r.get(0),
                            )
                            .map_err(db_err)?;
                        new_series.push(((sensor.to_string(), code), id));
                        id
                    }
                },
            };
            rows.push((
                day,
                id,
                rd.ts_ns,
                rd.value.as_f64(),
                quality_code(rd.quality),
            ));
        }
        rows.sort_unstable_by_key(|r| (r.0, r.1, r.2));
        // Data completeness: a new series' first point, and past days' kept counts go stale.
        if !new_series.is_empty() {
            let mut first: HashMap<i64, i64> =
                new_series.iter().map(|(_, id)| (*id, i64::MAX)).collect();
            for r in &rows {
                if let Some(f) = first.get_mut(&r.1) {
                    *f = (*f).min(r.2);
                }
            }
            for (id, ts) in first {
                counts::set_first_ts(&tx, id, ts)?;
            }
        }
        let today = now.div_euclid(DAY_NS);
        let mut new_days = Vec::new();
        let mut i = 0;
        while i < rows.len() {
            let day = rows[i].0;
            if !w.partitions.contains(&day) {
                tx.execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS {} (
                         series INTEGER NOT NULL, ts INTEGER NOT NULL,
                         value REAL NOT NULL, quality INTEGER NOT NULL,
                         PRIMARY KEY (series, ts)) WITHOUT ROWID",
                    table(day)
                ))
                .map_err(db_err)?;
                new_days.push(day);
            }
            if day < today {
                counts::invalidate_day(&tx, day)?;
                w.written_past_days.insert(day);
            }
            let end = i + rows[i..].iter().take_while(|r| r.0 == day).count();
            // Multi-row INSERTs: one statement step for ROWS_PER_INSERT rows.
            let mut many = tx
                .prepare_cached(&insert_sql(day, ROWS_PER_INSERT))
                .map_err(db_err)?;
            while end - i >= ROWS_PER_INSERT {
                let chunk = &rows[i..i + ROWS_PER_INSERT];
                let params: Vec<&dyn rusqlite::ToSql> = chunk
                    .iter()
                    .flat_map(|r| {
                        [
                            &r.1 as &dyn rusqlite::ToSql,
                            &r.2 as &dyn rusqlite::ToSql,
                            &r.3 as &dyn rusqlite::ToSql,
                            &r.4 as &dyn rusqlite::ToSql,
                        ]
                    })
                    .collect();
                many.execute(params.as_slice()).map_err(db_err)?;
                i += ROWS_PER_INSERT;
            }
            let mut one = tx.prepare_cached(&insert_sql(day, 1)).map_err(db_err)?;
            while i < end {
                let (_, s, ts, v, q) = rows[i];
                one.execute(params![s, ts, v, q]).map_err(db_err)?;
                i += 1;
            }
        }
        tx.commit().map_err(db_err)?;
        for ((sensor, code), id) in new_series {
            w.series.entry(sensor).or_default().push((code, id));
        }
        w.partitions.extend(new_days);
        Ok(())
    }

    fn series_id(
        &self,
        conn: &Connection,
        sensor: &str,
        q: Quantity,
    ) -> Result<Option<i64>, TsError> {
        conn.query_row(
            "SELECT id FROM series WHERE sensor = ?1 AND quantity = ?2",
            params![sensor, q.code()],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)
    }

    fn reader(&self) -> Result<std::sync::MutexGuard<'_, Connection>, TsError> {
        self.reader
            .lock()
            .map_err(|_| TsError::Store("reader lock poisoned".into()))
    }

    /// Day tables that exist and overlap `[from_ns, to_ns)`, oldest first.
    fn days_in(&self, conn: &Connection, from_ns: i64, to_ns: i64) -> Result<Vec<i64>, TsError> {
        if to_ns <= from_ns {
            return Ok(Vec::new());
        }
        let (a, b) = (from_ns.div_euclid(DAY_NS), (to_ns - 1).div_euclid(DAY_NS));
        Ok(list_partitions(conn)?.range(a..=b).copied().collect())
    }
}

impl TimeSeriesSink for EmbeddedStore {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn write(&self, readings: &[StoredReading]) -> Result<(), TsError> {
        self.write_rows(readings)
    }
}

impl TimeSeriesQuery for EmbeddedStore {
    fn points(
        &self,
        sensor: &str,
        quantity: Quantity,
        from_ns: i64,
        to_ns: i64,
        limit: usize,
    ) -> Result<Vec<Point>, TsError> {
        let conn = self.reader()?;
        let Some(series) = self.series_id(&conn, sensor, quantity)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for day in self.days_in(&conn, from_ns, to_ns)? {
            if out.len() >= limit {
                break;
            }
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT ts, value, quality FROM {} WHERE series = ?1 AND ts >= ?2 AND ts < ?3
                     ORDER BY ts LIMIT ?4",
                    table(day)
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(
                    params![series, from_ns, to_ns, (limit - out.len()) as i64],
                    |r| {
                        Ok(Point {
                            ts_ns: r.get(0)?,
                            value: r.get(1)?,
                            quality: quality_of(r.get(2)?),
                        })
                    },
                )
                .map_err(db_err)?;
            for p in rows {
                out.push(p.map_err(db_err)?);
            }
        }
        Ok(out)
    }

    fn downsample(
        &self,
        sensor: &str,
        quantity: Quantity,
        from_ns: i64,
        to_ns: i64,
        step_ns: i64,
    ) -> Result<Vec<Bucket>, TsError> {
        // A bucket can span two day tables: each day's groups are merged.
        let mut buckets = super::buckets::Buckets::new(from_ns, step_ns)?;
        let conn = self.reader()?;
        let Some(series) = self.series_id(&conn, sensor, quantity)? else {
            return Ok(Vec::new());
        };
        for day in self.days_in(&conn, from_ns, to_ns)? {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT (ts - ?2) / ?4, min(value), max(value), sum(value), count(*) FROM {}
                     WHERE series = ?1 AND ts >= ?2 AND ts < ?3 GROUP BY 1",
                    table(day)
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![series, from_ns, to_ns, step_ns], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, f64>(1)?,
                        r.get::<_, f64>(2)?,
                        r.get::<_, f64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(db_err)?;
            for row in rows {
                let (idx, mn, mx, sum, n) = row.map_err(db_err)?;
                buckets.add_group(idx, mn, mx, sum, n as u64);
            }
        }
        Ok(buckets.into_buckets())
    }

    fn latest(&self, sensor: &str) -> Result<Vec<(Quantity, Point)>, TsError> {
        let conn = self.reader()?;
        let mut series = Vec::new();
        {
            let mut stmt = conn
                .prepare_cached("SELECT id, quantity FROM series WHERE sensor = ?1")
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![sensor], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, u8>(1)?))
                })
                .map_err(db_err)?;
            for r in rows {
                series.push(r.map_err(db_err)?);
            }
        }
        let days: Vec<i64> = list_partitions(&conn)?.into_iter().rev().collect();
        let mut out = Vec::new();
        for (id, code) in series {
            let Some(q) = Quantity::from_code(code) else {
                continue;
            };
            for day in &days {
                let p = conn
                    .prepare_cached(&format!(
                        "SELECT ts, value, quality FROM {} WHERE series = ?1 ORDER BY ts DESC LIMIT 1",
                        table(*day)
                    ))
                    .map_err(db_err)?
                    .query_row(params![id], |r| {
                        Ok(Point {
                            ts_ns: r.get(0)?,
                            value: r.get(1)?,
                            quality: quality_of(r.get(2)?),
                        })
                    })
                    .optional()
                    .map_err(db_err)?;
                if let Some(p) = p {
                    out.push((q, p));
                    break;
                }
            }
        }
        Ok(out)
    }
}
