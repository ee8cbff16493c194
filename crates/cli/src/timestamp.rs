//! `--since` / `--until` values as docker's CLI reads them (a duration back from now, an RFC
//! 3339 time or date, or Unix seconds), turned into the `seconds.nanoseconds` the API takes.

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Converts `value` relative to `now`; the error is docker's message.
pub fn api_timestamp(flag: &str, value: &str, now: DateTime<Utc>) -> Result<String, String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    // Unsigned durations only; a bare `0` is Unix time 0, as docker reads it.
    if let Some(nanos) = go_duration(value) {
        return Ok(format_unix(now - chrono::Duration::nanoseconds(nanos)));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(format_unix(t.with_timezone(&Utc)));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f") {
        if let Some(t) = Local.from_local_datetime(&t).single() {
            return Ok(format_unix(t.with_timezone(&Utc)));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0).and_then(|t| Local.from_local_datetime(&t).single()) {
            return Ok(format_unix(t.with_timezone(&Utc)));
        }
    }
    let unix = value.split_once('.').map_or(value, |(s, _)| s);
    if !unix.is_empty() && unix.chars().all(|c| c.is_ascii_digit()) && value.parse::<f64>().is_ok() {
        return Ok(value.to_string());
    }
    Err(format!("invalid value for \"{flag}\": failed to parse value as time or duration: \"{value}\""))
}

fn go_duration(value: &str) -> Option<i64> {
    let unsigned = !value.starts_with(['-', '+']) && value != "0";
    berth_api::duration::parse_go(value).filter(|_| unsigned)
}

fn format_unix(t: DateTime<Utc>) -> String {
    format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_like_docker() {
        let now = Utc.timestamp_opt(1_000_000, 0).single().unwrap();
        assert_eq!(api_timestamp("since", "10m", now).unwrap(), "999400.000000000");
        assert_eq!(api_timestamp("since", "1h30m", now).unwrap(), "994600.000000000");
        assert_eq!(api_timestamp("since", "1500000000", now).unwrap(), "1500000000");
        assert_eq!(api_timestamp("since", "1500000000.5", now).unwrap(), "1500000000.5");
        assert_eq!(api_timestamp("since", "2026-01-02T03:04:05Z", now).unwrap(), "1767323045.000000000");
        assert_eq!(
            api_timestamp("since", "xyz", now).unwrap_err(),
            "invalid value for \"since\": failed to parse value as time or duration: \"xyz\""
        );
        assert!(api_timestamp("until", "10x", now).is_err());
    }
}
