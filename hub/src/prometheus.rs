//! The Prometheus text format of the hub's `/metrics`: one writer, so every family is announced
//! once (`# HELP`, `# TYPE`) with all its samples right after it, as scrapers require.

use std::fmt::{Display, Write};

/// A family of one sample without labels.
pub fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// A family with one sample per value of `label`.
pub fn by_label<L: Display, V: Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (l, v) in samples {
        let _ = writeln!(out, "{name}{{{label}=\"{l}\"}} {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_announced_then_sampled() {
        let mut out = String::new();
        single(&mut out, "a_total", "counter", "As.", 3);
        by_label(&mut out, "b", "gauge", "Bs.", "task", [("x", 1), ("y", 0)]);
        assert_eq!(
            out,
            "# HELP a_total As.\n# TYPE a_total counter\na_total 3\n\
             # HELP b Bs.\n# TYPE b gauge\nb{task=\"x\"} 1\nb{task=\"y\"} 0\n"
        );
    }
}
