//! Docker's human-readable durations (go-units `HumanDuration`), for `Status` strings.

use std::time::Duration;

/// "Less than a second", "5 seconds", "About a minute", "3 hours", "2 weeks"…
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let minutes = secs / 60;
    let hours = minutes / 60;
    match () {
        _ if secs < 1 => "Less than a second".into(),
        _ if secs == 1 => "1 second".into(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours < 2 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_docker_wording() {
        let s = |n| duration(Duration::from_secs(n));
        assert_eq!(duration(Duration::from_millis(300)), "Less than a second");
        assert_eq!(s(1), "1 second");
        assert_eq!(s(59), "59 seconds");
        assert_eq!(s(60), "About a minute");
        assert_eq!(s(600), "10 minutes");
        assert_eq!(s(3600), "About an hour");
        assert_eq!(s(3 * 3600), "3 hours");
        assert_eq!(s(3 * 86400), "3 days");
        assert_eq!(s(21 * 86400), "3 weeks");
    }
}
