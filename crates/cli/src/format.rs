//! Docker's text formats: tabwriter-aligned tables, human durations and sizes, and the
//! size units that `-m` accepts. Each mirrors the Go library docker uses, because scripts
//! parse these outputs.

use std::time::Duration;

/// Collects tab-separated rows and aligns them like Go's `text/tabwriter` configured as
/// docker does (`minwidth 10, padding 3, padchar ' '`): every cell but a line's last is
/// padded to the widest cell of its column plus 3, and at least 10.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
    /// Overrides the minimum column width (`docker top` uses 20).
    min_width: Option<usize>,
}

const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

impl Table {
    /// An empty table.
    pub fn new() -> Table {
        Table::default()
    }

    /// An empty table whose columns are at least `min_width` wide.
    pub fn with_min_width(min_width: usize) -> Table {
        Table { rows: Vec::new(), min_width: Some(min_width) }
    }

    /// Adds one row of cells.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Adds a line given in tabwriter's own form: cells separated by `\t`.
    pub fn line(&mut self, text: &str) {
        self.rows
            .push(text.split('\t').map(str::to_string).collect());
    }

    /// The aligned text, one `\n`-terminated line per row.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Go's tabwriter aligns a column over a block of consecutive lines that all have a
        // cell there; the last cell of a line is not part of any column.
        let widths = column_widths(&self.rows, self.min_width.unwrap_or(MIN_WIDTH));
        for (i, row) in self.rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if c + 1 < row.len() {
                    let w = widths[i].get(c).copied().unwrap_or(0);
                    let pad = w.saturating_sub(cell.chars().count());
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// For each row, the width of each of its aligned cells, computed per column block.
fn column_widths(rows: &[Vec<String>], min_width: usize) -> Vec<Vec<usize>> {
    let mut widths: Vec<Vec<usize>> = rows
        .iter()
        .map(|r| vec![0; r.len().saturating_sub(1)])
        .collect();
    let max_cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    for col in 0..max_cols {
        let mut start = 0;
        while start < rows.len() {
            if rows[start].len() <= col + 1 {
                start += 1;
                continue;
            }
            let mut end = start;
            let mut width = min_width;
            while end < rows.len() && rows[end].len() > col + 1 {
                width = width.max(rows[end][col].chars().count() + PADDING);
                end += 1;
            }
            for w in &mut widths[start..end] {
                w[col] = width;
            }
            start = end;
        }
    }
    widths
}

/// Go-units' `HumanDuration`: "Less than a second", "5 seconds", "About a minute", …
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    let seconds = secs as i64;
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = (secs / 60.0) as i64;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (secs / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (secs / 3600.0 / 24.0 / 365.0) as i64)
}

/// How long ago a UNIX timestamp was, as docker prints it in CREATED columns.
pub fn ago(unix_secs: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let d = Duration::from_secs(now.saturating_sub(unix_secs).max(0) as u64);
    format!("{} ago", human_duration(d))
}

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

fn custom_size(size: f64, precision: usize, base: f64, units: &[&str; 9]) -> String {
    let mut size = size;
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    format!("{}{}", go_g(size, precision), units[i])
}

/// Go-units' `HumanSizeWithPrecision`: decimal units, `precision` significant digits
/// (`docker images` uses 3: `4.26MB`).
pub fn human_size(bytes: i64, precision: usize) -> String {
    custom_size(bytes as f64, precision, 1000.0, &DECIMAL_UNITS)
}

/// Go-units' `BytesSize`: binary units, 4 significant digits (`23.54GiB`).
pub fn bytes_size(bytes: i64) -> String {
    custom_size(bytes as f64, 4, 1024.0, &BINARY_UNITS)
}

/// Formats like Go's `%.{p}g`: `p` significant digits, trailing zeros dropped, and the
/// exponent form when the exponent is below -4 or at least `p`.
pub fn go_g(v: f64, precision: usize) -> String {
    let p = precision.max(1);
    if v == 0.0 {
        return "0".into();
    }
    let sci = format!("{:.*e}", p - 1, v);
    let (mant, exp) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => return sci,
    };
    if exp < -4 || exp >= p as i32 {
        let mant = trim_zeros(&mant);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let decimals = (p as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}"))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Go-units' `RAMInBytes`: `512`, `64m`, `1.5g`, `2GiB`… in binary multiples.
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{s}'");
    let digits_end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let (num, mut rest) = s.split_at(digits_end);
    // Go's regexp demands digits first, and dots only between digit runs.
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.contains("..") {
        return Err(invalid());
    }
    let value: f64 = num.parse().map_err(|_| invalid())?;
    rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut chars = rest.chars().peekable();
    let mult: f64 = match chars.peek().map(|c| c.to_ascii_lowercase()) {
        Some(c @ ('k' | 'm' | 'g' | 't' | 'p')) => {
            chars.next();
            let exp = match c {
                'k' => 1,
                'm' => 2,
                'g' => 3,
                't' => 4,
                _ => 5,
            };
            1024f64.powi(exp)
        }
        _ => 1.0,
    };
    let tail: String = chars.collect::<String>().to_ascii_lowercase();
    if !matches!(tail.as_str(), "" | "i" | "b" | "ib") {
        return Err(invalid());
    }
    Ok((value * mult) as i64)
}

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// A short (12 hex characters) ID, without any `sha256:` prefix.
pub fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_tabwriter() {
        let mut t = Table::new();
        t.line("CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES");
        assert_eq!(
            t.render(),
            "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
        );
        let mut t = Table::new();
        t.row(["a", "bbbbbbbbbbbb", "c"]);
        t.row(["dddddddddd…", "e", "f"]);
        assert_eq!(
            t.render(),
            "a             bbbbbbbbbbbb   c\ndddddddddd…   e              f\n"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            human_duration(Duration::from_millis(500)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human_duration(Duration::from_secs(61)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3600)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3 hours");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
        assert_eq!(human_duration(Duration::from_secs(21 * 86400)), "3 weeks");
        assert_eq!(human_duration(Duration::from_secs(90 * 86400)), "3 months");
        assert_eq!(
            human_duration(Duration::from_secs(3 * 365 * 86400)),
            "3 years"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(0, 3), "0B");
        assert_eq!(human_size(1880, 3), "1.88kB");
        assert_eq!(human_size(4_261_000, 3), "4.26MB");
        assert_eq!(human_size(1_984_000, 3), "1.98MB");
        assert_eq!(human_size(999, 3), "999B");
        assert_eq!(human_size(999_700, 3), "1e+03kB");
        assert_eq!(human_size(120_000_000, 3), "120MB");
        assert_eq!(bytes_size(25_275_000_000), "23.54GiB");
        assert_eq!(bytes_size(1024), "1KiB");
    }

    #[test]
    fn ram_units() {
        assert_eq!(ram_in_bytes("512"), Ok(512));
        assert_eq!(ram_in_bytes("64m"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("64MB"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("1.5g"), Ok(3 << 29));
        assert_eq!(ram_in_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(ram_in_bytes("10b"), Ok(10));
        assert_eq!(ram_in_bytes("x"), Err("invalid size: 'x'".into()));
        assert!(ram_in_bytes("10q").is_err());
        assert!(ram_in_bytes("").is_err());
        assert!(ram_in_bytes(".5m").is_err());
    }

    #[test]
    fn ellipsis_and_ids() {
        assert_eq!(ellipsis("echo hi", 20), "echo hi");
        assert_eq!(
            ellipsis("sh -c 'while true; do sleep 1; done'", 20),
            "sh -c 'while true; …"
        );
        assert_eq!(short_id("sha256:5d29bc371fc299d3349b"), "5d29bc371fc2");
    }
}
