//! Go's `time.ParseDuration`, which docker's flags and query values use (`1h30m`, `1.5s`,
//! `-300ms`): one reader for the CLI and the daemon.

/// Nanoseconds in a Go duration string; `None` if it is not one. A bare `0` is zero; any
/// other number needs a unit.
pub fn parse_go(s: &str) -> Option<i64> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * nanos_per_unit;
    }
    let nanos = total.round() as i64;
    Some(if negative { -nanos } else { nanos })
}

#[cfg(test)]
mod tests {
    use super::parse_go;

    #[test]
    fn reads_go_durations() {
        assert_eq!(parse_go("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_go("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go("300ms"), Some(300_000_000));
        assert_eq!(parse_go("-1s"), Some(-1_000_000_000));
        assert_eq!(parse_go("0"), Some(0));
        assert_eq!(parse_go("10"), None);
        assert_eq!(parse_go("10x"), None);
        assert_eq!(parse_go(""), None);
    }
}
