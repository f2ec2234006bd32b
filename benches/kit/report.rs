//! The table the kit prints.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------

pub(crate) struct Row {
    pub(crate) section: &'static str,
    pub(crate) what: String,
    pub(crate) result: String,
    pub(crate) target: String,
    pub(crate) verdict: Option<bool>,
    /// CPU while it was measured: server / load generator / other processes, in cores.
    pub(crate) cpu: Option<CpuUse>,
    /// The "others" CPU is the PostgreSQL server the row measures, not interference.
    pub(crate) others_are_database: bool,
}

impl Row {
    pub(crate) fn new(
        section: &'static str,
        what: impl Into<String>,
        result: impl Into<String>,
    ) -> Row {
        Row {
            section,
            what: what.into(),
            result: result.into(),
            target: String::new(),
            verdict: None,
            cpu: None,
            others_are_database: false,
        }
    }

    /// Other processes took enough CPU while this was measured to skew it.
    pub(crate) fn noisy(&self) -> bool {
        !self.others_are_database && self.cpu.is_some_and(|c| c.others > NOISY_CORES)
    }

    /// Marks the row's "others" CPU as the PostgreSQL server it measures.
    pub(crate) fn others_are_database(mut self) -> Row {
        self.others_are_database = true;
        self
    }

    fn describe_cpu(&self) -> Option<String> {
        self.cpu.map(|c| {
            let mut s = c.describe();
            if self.others_are_database {
                s.push_str(" (PostgreSQL)");
            }
            s
        })
    }

    pub(crate) fn cpu(mut self, cpu: Option<CpuUse>) -> Row {
        self.cpu = cpu;
        self
    }

    pub(crate) fn target(mut self, target: impl Into<String>) -> Row {
        self.target = target.into();
        self
    }

    pub(crate) fn verdict(mut self, pass: bool) -> Row {
        self.verdict = Some(pass);
        self
    }
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) rows: Vec<Row>,
}

impl Report {
    /// Adds a row, echoing it on stderr so a long run shows progress.
    pub(crate) fn add(&mut self, row: Row) {
        eprintln!(
            "  [{}] {}: {}{}{}",
            row.section,
            row.what,
            row.result,
            match row.verdict {
                Some(true) => "  PASS",
                Some(false) => "  MISS",
                None => "",
            },
            row.describe_cpu()
                .map(|c| format!("  (cpu {c})"))
                .unwrap_or_default()
        );
        self.rows.push(row);
    }

    pub(crate) fn print(&self, header: &[String]) {
        let cells = |r: &Row| -> [String; 6] {
            [
                r.section.to_string(),
                r.what.clone(),
                r.result.clone(),
                r.target.clone(),
                match r.verdict {
                    Some(true) => "PASS",
                    Some(false) => "MISS",
                    None => "",
                }
                .to_string()
                    + if r.noisy() { "*" } else { "" },
                r.describe_cpu().unwrap_or_default(),
            ]
        };
        let titles = [
            "section",
            "measurement",
            "result",
            "target",
            "",
            "cpu cores: server / kit / others",
        ]
        .map(String::from);
        let rows: Vec<[String; 6]> = self.rows.iter().map(cells).collect();
        let mut widths = titles.clone().map(|t| t.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        widths[4] = 5;
        let line = |cells: &[String; 6]| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                out.push_str(cell);
                if i < 5 {
                    out.push_str(&" ".repeat(w - cell.chars().count()));
                }
            }
            out.trim_end().to_string() + "\n"
        };
        let mut out = String::new();
        for h in header {
            out.push_str(h);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&line(&titles));
        out.push_str(&line(&widths.map(|w| "-".repeat(w))));
        for row in &rows {
            out.push_str(&line(row));
        }
        let missed = self
            .rows
            .iter()
            .filter(|r| r.verdict == Some(false))
            .count();
        let judged = self.rows.iter().filter(|r| r.verdict.is_some()).count();
        out.push_str(&format!("\n{} of {judged} targets met", judged - missed));
        let noisy = self.rows.iter().filter(|r| r.noisy()).count();
        if noisy > 0 {
            out.push_str(&format!(
                "; * {noisy} rows were measured while other processes used more than \
                 {NOISY_CORES} cores: rerun them on a quiet machine"
            ));
        }
        out.push('\n');
        print!("{out}");
    }
}

pub(crate) fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// The nearest-rank percentile of sorted nanoseconds.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(Duration::from_nanos(sorted[index]))
}

pub(crate) fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

pub(crate) fn opt_duration(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".to_string(), fmt_duration)
}

pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
