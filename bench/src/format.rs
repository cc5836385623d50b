//! Human-readable numbers and plain-text tables for the terminal.

use std::time::Duration;

/// 1.23 ms, 456 µs, 2.10 s.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

/// 512 B, 184.3 KB, 10.51 MB (decimal units, as network sizes are usually quoted).
pub fn bytes(n: usize) -> String {
    let n = n as f64;
    if n >= 1e6 {
        format!("{:.2} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} KB", n / 1e3)
    } else {
        format!("{n:.0} B")
    }
}

/// Median of durations (lower middle for even counts).
pub fn median(mut ds: Vec<Duration>) -> Duration {
    if ds.is_empty() {
        return Duration::ZERO;
    }
    ds.sort();
    ds[(ds.len() - 1) / 2]
}

/// A table with a header row, left-aligned first column, right-aligned others.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Header and rows, for other renderings (LaTeX).
    pub fn cells(&self) -> (&[String], &[Vec<String>]) {
        (&self.header, &self.rows)
    }

    /// Renders as a Markdown-compatible table.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let width = |c: usize| {
            self.rows
                .iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .chain([self.header[c].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let line = |cells: &[String]| {
            let parts: Vec<String> = (0..columns)
                .map(|c| {
                    let cell = cells.get(c).map_or("", |s| s.as_str());
                    if c == 0 {
                        format!("{cell:<w$}", w = widths[c])
                    } else {
                        format!("{cell:>w$}", w = widths[c])
                    }
                })
                .collect();
            format!("| {} |", parts.join(" | "))
        };
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(c, &w)| {
                if c == 0 {
                    "-".repeat(w)
                } else {
                    format!("{}:", "-".repeat(w - 1))
                }
            })
            .collect();
        let mut out = vec![line(&self.header), format!("| {} |", rule.join(" | "))];
        out.extend(self.rows.iter().map(|r| line(r)));
        out.join("\n")
    }
}

/// Verification and 1:N metrics side by side, one column per scheme.
pub fn accuracy_table(columns: &[(String, &train::evaluation::Accuracy)]) -> Table {
    let pct = |v: f64| format!("{:.2}%", 100.0 * v);
    let mut header = vec!["test metric".to_string()];
    header.extend(columns.iter().map(|(name, _)| name.clone()));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(&header);
    type Pick = fn(&train::evaluation::Accuracy) -> f64;
    let rows: [(&str, Pick); 10] = [
        ("accuracy", |a| a.verification.accuracy),
        ("precision", |a| a.verification.precision),
        ("recall", |a| a.verification.recall),
        ("F1", |a| a.verification.f1),
        ("EER", |a| a.verification.eer),
        ("FNMR @ FMR 1%", |a| a.verification.fnmr_at_fmr_1pct),
        ("FNMR @ FMR 0.1%", |a| a.verification.fnmr_at_fmr_01pct),
        ("rank-1 (1:N)", |a| a.rank1),
        ("rank-5 (1:N)", |a| a.rank5),
        ("ROC AUC", |a| a.verification.roc_auc),
    ];
    for (name, pick) in rows {
        let mut cells = vec![name.to_string()];
        cells.extend(columns.iter().map(|(_, a)| {
            if name == "ROC AUC" {
                format!("{:.4}", pick(a))
            } else {
                pct(pick(a))
            }
        }));
        t.row(cells);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_median() {
        assert_eq!(duration(Duration::from_micros(1500)), "1.50 ms");
        assert_eq!(duration(Duration::from_micros(15)), "15 µs");
        assert_eq!(duration(Duration::from_millis(2100)), "2.10 s");
        assert_eq!(bytes(184_320), "184.3 KB");
        assert_eq!(bytes(12), "12 B");
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(median(vec![ms(5), ms(1), ms(3)]), ms(3));
        assert_eq!(median(vec![ms(4), ms(1), ms(3), ms(2)]), ms(2));
        assert_eq!(median(vec![]), Duration::ZERO);
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["stage", "time"]);
        t.row(vec!["encrypt".into(), "1.00 ms".into()]);
        t.row(vec!["decrypt".into(), "12.00 ms".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines
            .iter()
            .all(|l| l.chars().count() == lines[0].chars().count()));
        assert!(lines[2].ends_with("|  1.00 ms |"));
    }
}
