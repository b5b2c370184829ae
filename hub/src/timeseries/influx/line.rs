//! Line protocol: one line per reading (the schema is in the module docs of `influx`).

use super::super::StoredReading;
use std::fmt::Write as _;

fn escape_tag(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
}

/// Appends one line of line protocol for `r`.
pub fn line_of(out: &mut String, r: &StoredReading) {
    let rd = &r.reading;
    out.push_str(rd.quantity.name());
    let tags: [(&str, Option<&str>); 5] = [
        ("component", r.component_id.as_deref()),
        ("department", r.department.as_deref()),
        ("edge", Some(r.edge_id.as_str())),
        ("grid", r.grid_cell.as_deref()),
        ("sensor", Some(rd.sensor.as_str())),
    ];
    for (k, v) in tags {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push(',');
            out.push_str(k);
            out.push('=');
            escape_tag(out, v);
        }
    }
    let v = rd.value.as_f64();
    let v = if v.is_finite() { v } else { 0.0 };
    let q = match rd.quality {
        protocol::uplink::Quality::Good => 0,
        protocol::uplink::Quality::Suspect => 1,
        protocol::uplink::Quality::Bad => 2,
    };
    let _ = writeln!(out, " value={v:?},quality={q}i {}", rd.ts_ns);
}
