//! Text output for an 80-column terminal. (JSON is the `Plan` serialized; see
//! docs/plan.md.)

use super::{Change, Plan, PlanEngine};
use std::fmt::Write;

fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

fn human_secs(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Wrap `text` at `width` with `indent` on continuation lines.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let lead: String = text.chars().take_while(|c| *c == ' ').collect();
    let mut line = lead.clone();
    let mut fresh = true;
    for w in text.split_whitespace() {
        if !fresh && line.chars().count() + 1 + w.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_string();
        } else if !fresh {
            line.push(' ');
        }
        line.push_str(w);
        fresh = false;
    }
    out.push_str(&line);
    out
}

/// The plan as text; `engine` names the classes of its changes.
pub fn text(engine: &dyn PlanEngine, p: &Plan) -> String {
    let class = |c: &Change| engine.change_label(c);
    let mut s = String::new();
    let f = &p.facts;
    let _ = writeln!(
        s,
        "plan for {}.{} on {}",
        f.schema, f.table, p.server_version
    );
    let _ = writeln!(
        s,
        "table: ~{} rows, data {}, indexes {}, avg row {} B",
        f.row_estimate,
        human_bytes(f.data_bytes),
        human_bytes(f.index_bytes),
        f.avg_row_bytes
    );
    let _ = writeln!(s, "\nchanges:");
    for (i, c) in p.changes.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}",
            wrap(&format!("{:>2}. {}", i + 1, c.clause), 78, "    ")
        );
        let _ = writeln!(s, "    {}", class(c));
        let _ = writeln!(s, "{}", wrap(&format!("    {}", c.reason), 78, "    "));
    }
    let _ = writeln!(s, "overall: {}", class(&p.overall));
    let r = &p.recommendation;
    let strategy = match r.strategy {
        super::Strategy::Native => "run natively",
        super::Strategy::Online => "run with godwit run",
        super::Strategy::Phases => "split into expand/contract phases",
    };
    let _ = writeln!(s, "\nrecommendation: {strategy}");
    let _ = writeln!(s, "{}", wrap(&format!("  {}", r.reason), 78, "  "));
    for st in &r.statements {
        let _ = writeln!(s, "{}", wrap(&format!("  > {st}"), 78, "      "));
    }
    let e = &p.estimate;
    let _ = writeln!(s, "\nonline path estimate:");
    let _ = writeln!(
        s,
        "  rows {}, copy {}, disk {} (free {})",
        e.rows,
        human_bytes(e.bytes_to_copy),
        human_bytes(e.disk_needed_bytes),
        e.free_bytes
            .map(human_bytes)
            .unwrap_or_else(|| "unknown".into())
    );
    let _ = writeln!(
        s,
        "  copy ~{} at {:.0} rows/s ({})",
        human_secs(e.copy_seconds),
        e.rows_per_sec,
        e.rate_source
    );
    let _ = writeln!(
        s,
        "{}",
        wrap(
            &format!(
                "  replication: {} to apply; {}",
                human_bytes(e.replication_bytes),
                e.replication_note
            ),
            78,
            "    "
        )
    );
    if !p.checks.is_empty() {
        let _ = writeln!(s, "\ndata checks:");
        for c in &p.checks {
            let what = serde_json::to_value(&c.probe)
                .ok()
                .and_then(|v| v["check"].as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {what}: {}{} ({} rows read{})",
                if c.found { "FOUND" } else { "ok" },
                c.example
                    .as_ref()
                    .map(|x| format!(" e.g. {x}"))
                    .unwrap_or_default(),
                c.rows_checked,
                if c.complete { "" } else { ", partial" }
            );
        }
    }
    let _ = writeln!(s, "\nrisks:");
    if p.findings.is_empty() {
        let _ = writeln!(s, "  none found");
    }
    for fnd in &p.findings {
        let sev = match fnd.severity {
            super::Severity::Warning => "warning",
            super::Severity::Error => "error",
        };
        let _ = writeln!(
            s,
            "{}",
            wrap(
                &format!("  {sev} [{}] {}", fnd.rule, fnd.message),
                78,
                "    "
            )
        );
        let _ = writeln!(
            s,
            "{}",
            wrap(&format!("    fix: {}", fnd.fix), 78, "      ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_stays_within_width() {
        let long = "word ".repeat(60);
        for l in wrap(&long, 78, "    ").lines() {
            assert!(l.chars().count() <= 78, "{l}");
        }
    }
}
