//! Go formatting the classic builder's cache keys and `history` are made of (design §3):
//! `%q` of strings and runes, and `time.Duration` parsing/printing.
use std::time::Duration;

/// Go's `%q` / `strconv.Quote` of a string.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `%q` of an integer: a rune literal, e.g. `'\x00'`, `'\x03'`, `'a'` (the HEALTHCHECK
/// retries in its history line).
pub fn go_rune_literal(n: u32) -> String {
    let c = char::from_u32(n).unwrap_or('\u{FFFD}');
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'');
    out.push('\'');
    out
}

fn push_escaped(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if is_go_printable(c) => out.push(c),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// Close to Go's `unicode.IsPrint`: no controls, no spaces but ' ', no invisible format characters.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0xad | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2064 | 0xfeff | 0xfff9..=0xfffb))
}

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Go's `time.ParseDuration` (e.g. `1m30s`, `1.5s`, `300ms`, `0`); errors use Go's wording.
/// Negative durations are rejected (nothing in a Dockerfile may be negative).
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(s));
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {}", go_quote(s)));
        }
        let Some(&(_, mult)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                go_quote(unit),
                go_quote(s)
            ));
        };
        let int_v: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| invalid())?
        };
        let mut v = int_v.checked_mul(mult).ok_or_else(invalid)?;
        if !frac.is_empty() {
            // Enough digits for nanosecond precision of an hour; Go drops the rest the same way.
            let digits = &frac[..frac.len().min(18)];
            let f: u128 = digits.parse().map_err(|_| invalid())?;
            v += f * mult / 10u128.pow(digits.len() as u32);
        }
        total = total
            .checked_add(v)
            .filter(|t| *t <= i64::MAX as u128)
            .ok_or_else(invalid)?;
        rest = after;
    }
    if neg && total > 0 {
        return Err(format!("negative duration {}", go_quote(s)));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Go's `time.Duration.String()`: `0s`, `5s`, `1.5s`, `1m0s`, `1h0m0s`, `300ms`, `2µs`.
pub fn format_go_duration(d: Duration) -> String {
    let ns = d.as_nanos().min(i64::MAX as u128) as u64;
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        return match ns {
            n if n < 1_000 => format!("{n}ns"),
            n if n < 1_000_000 => format!("{}µs", frac(n, 3)),
            n => format!("{}ms", frac(n, 6)),
        };
    }
    let mut out = format!("{}s", frac(ns % 60_000_000_000, 9));
    let minutes = ns / 60_000_000_000;
    if minutes > 0 {
        out = format!("{}m{out}", minutes % 60);
        let hours = minutes / 60;
        if hours > 0 {
            out = format!("{hours}h{out}");
        }
    }
    out
}

/// `v / 10^prec` with the fraction's trailing zeros (and a bare '.') dropped.
fn frac(v: u64, prec: u32) -> String {
    let p = 10u64.pow(prec);
    let (int, fr) = (v / p, v % p);
    if fr == 0 {
        return int.to_string();
    }
    let digits = format!("{fr:0width$}", width = prec as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_like_go() {
        assert_eq!(go_quote("echo hi"), r#""echo hi""#);
        assert_eq!(go_quote(r#"["a","#), r#""[\"a\",""#);
        assert_eq!(go_quote("a\tb\nc\\d\x01\x7f"), r#""a\tb\nc\\d\x01\x7f""#);
        assert_eq!(go_quote("안녕 é"), "\"안녕 é\"");
        assert_eq!(go_quote("\u{a0}\u{feff}"), r#""\u00a0\ufeff""#);
        assert_eq!(go_quote("'"), r#""'""#);
    }

    #[test]
    fn rune_literals_like_go() {
        assert_eq!(go_rune_literal(0), r"'\x00'");
        assert_eq!(go_rune_literal(3), r"'\x03'");
        assert_eq!(go_rune_literal(10), r"'\n'");
        assert_eq!(go_rune_literal(39), r"'\''");
        assert_eq!(go_rune_literal(34), "'\"'");
        assert_eq!(go_rune_literal(97), "'a'");
    }

    #[test]
    fn durations_like_go() {
        let cases = [
            ("5s", "5s"),
            ("1m", "1m0s"),
            ("1h", "1h0m0s"),
            ("90s", "1m30s"),
            ("1.5s", "1.5s"),
            ("300ms", "300ms"),
            ("1.5ms", "1.5ms"),
            ("2us", "2µs"),
            ("2µs", "2µs"),
            ("7ns", "7ns"),
            ("0", "0s"),
            ("0s", "0s"),
            ("1h2m3.25s", "1h2m3.25s"),
            ("26h", "26h0m0s"),
            (".5s", "500ms"),
            ("1.s", "1s"),
            ("+3s", "3s"),
        ];
        for (input, shown) in cases {
            let d = parse_go_duration(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(format_go_duration(d), shown, "{input}");
        }
        assert_eq!(
            parse_go_duration("1").unwrap_err(),
            r#"time: missing unit in duration "1""#
        );
        assert_eq!(
            parse_go_duration("1x").unwrap_err(),
            r#"time: unknown unit "x" in duration "1x""#
        );
        assert_eq!(
            parse_go_duration("").unwrap_err(),
            r#"time: invalid duration """#
        );
        assert_eq!(
            parse_go_duration("s").unwrap_err(),
            r#"time: invalid duration "s""#
        );
        assert!(parse_go_duration("-1s").is_err());
        assert_eq!(format_go_duration(Duration::from_millis(30_000)), "30s");
    }
}
