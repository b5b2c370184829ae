//! What the sink wrote, as VictoriaMetrics exports it: the series selector of one
//! (sensor, quantity) and the JSON lines of `/api/v1/export` read back into points.
//!
//! VictoriaMetrics turns a line-protocol point `tilt,sensor=MH-1,… value=1.5,quality=0i ts`
//! into two series, `tilt_value` and `tilt_quality`, with the tags as labels and the timestamp
//! in milliseconds. A sensor reassigned to another component (other `component`, `grid`,
//! `department` tags) has several series per metric; they are one series here, as in the
//! embedded store, which keys on (sensor, quantity) only.

use super::super::{Point, TsError};
use protocol::uplink::Quality;
use protocol::Quantity;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The selector of both metrics of (sensor, quantity), whatever the other tags.
pub fn selector(sensor: &str, quantity: Quantity) -> String {
    let q = quantity.name();
    format!(
        "{{__name__=~\"{q}_(value|quality)\",sensor=\"{}\"}}",
        label_value(sensor)
    )
}

/// The selector of every `*_value` metric of a sensor (which quantities it has).
pub fn sensor_values_selector(sensor: &str) -> String {
    format!(
        "{{__name__=~\".+_value\",sensor=\"{}\"}}",
        label_value(sensor)
    )
}

/// The label value the sink's tag became (line breaks are written as spaces, see
/// `influx::line`), quoted for a PromQL string.
pub(super) fn label_value(sensor: &str) -> String {
    let mut out = String::with_capacity(sensor.len());
    for c in sensor.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[derive(Deserialize)]
struct Line {
    metric: Metric,
    values: Vec<Option<f64>>,
    timestamps: Vec<i64>,
}

#[derive(Deserialize)]
struct Metric {
    #[serde(rename = "__name__")]
    name: String,
}

/// The value and the quality seen at one millisecond.
#[derive(Default)]
struct Sample {
    value: Option<f64>,
    quality: Option<f64>,
}

/// Merges the exported series of (sensor, `quantity`) into points, oldest first, one per
/// millisecond. Two samples at one millisecond (a resend to a server without
/// `-dedup.minScrapeInterval`, or the series of a reassigned sensor) collapse as
/// VictoriaMetrics' own dedup does: the largest value is kept (and the worst quality).
/// `describe` names the server in errors.
pub fn points_of(body: &[u8], quantity: Quantity, describe: &str) -> Result<Vec<Point>, TsError> {
    let value_name = format!("{}_value", quantity.name());
    let quality_name = format!("{}_quality", quantity.name());
    let mut by_ms: BTreeMap<i64, Sample> = BTreeMap::new();
    for raw in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line: Line = serde_json::from_slice(raw)
            .map_err(|e| TsError::Store(format!("{describe}: unreadable export line: {e}")))?;
        let is_value = if line.metric.name == value_name {
            true
        } else if line.metric.name == quality_name {
            false
        } else {
            continue;
        };
        for (ts, v) in line.timestamps.iter().zip(&line.values) {
            let Some(v) = *v else { continue };
            let s = by_ms.entry(*ts).or_default();
            let slot = if is_value {
                &mut s.value
            } else {
                &mut s.quality
            };
            *slot = Some(slot.map_or(v, |old: f64| old.max(v)));
        }
    }
    Ok(by_ms
        .into_iter()
        .filter_map(|(ms, s)| {
            Some(Point {
                ts_ns: ms.checked_mul(1_000_000)?,
                value: s.value?,
                quality: quality_of(s.quality.unwrap_or(0.0)),
            })
        })
        .collect())
}

/// The sink's quality codes (0 good, 1 suspect, 2 bad), as the embedded store reads them.
fn quality_of(code: f64) -> Quality {
    if code == 0.0 {
        Quality::Good
    } else if code == 1.0 {
        Quality::Suspect
    } else {
        Quality::Bad
    }
}

#[derive(Deserialize)]
struct SeriesAnswer {
    data: Vec<Metric>,
}

/// The quantities named by a `/api/v1/series` answer of `*_value` metrics, by code.
pub fn quantities_of(body: &[u8], describe: &str) -> Result<Vec<Quantity>, TsError> {
    let answer: SeriesAnswer = serde_json::from_slice(body)
        .map_err(|e| TsError::Store(format!("{describe}: unreadable series answer: {e}")))?;
    let mut out: Vec<Quantity> = answer
        .data
        .iter()
        .filter_map(|m| m.name.strip_suffix("_value"))
        .filter_map(|name| Quantity::from_name(name).ok())
        .collect();
    out.sort_by_key(|q| q.code());
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sensor_name_is_quoted_for_promql() {
        assert_eq!(
            selector("a\"b\\c\nd", Quantity::Tilt),
            "{__name__=~\"tilt_(value|quality)\",sensor=\"a\\\"b\\\\c d\"}"
        );
    }

    #[test]
    fn value_and_quality_lines_join_on_the_millisecond_and_duplicates_collapse() {
        let body = br#"{"metric":{"__name__":"tilt_value","sensor":"S","component":"A"},"values":[1.5,2.5],"timestamps":[10,11]}
{"metric":{"__name__":"tilt_quality","sensor":"S","component":"A"},"values":[0,1],"timestamps":[10,11]}
{"metric":{"__name__":"tilt_value","sensor":"S","component":"B"},"values":[3.5,0.5],"timestamps":[12,11]}
{"metric":{"__name__":"tilt_quality","sensor":"S","component":"B"},"values":[2,1],"timestamps":[12,11]}
"#;
        let p = points_of(body, Quantity::Tilt, "vm").unwrap();
        let got: Vec<(i64, f64, Quality)> =
            p.iter().map(|p| (p.ts_ns, p.value, p.quality)).collect();
        assert_eq!(
            got,
            vec![
                (10_000_000, 1.5, Quality::Good),
                (11_000_000, 2.5, Quality::Suspect),
                (12_000_000, 3.5, Quality::Bad),
            ]
        );
        assert!(points_of(b"{not json", Quantity::Tilt, "vm at x")
            .unwrap_err()
            .to_string()
            .contains("vm at x"));
    }
}
