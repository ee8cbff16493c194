//! Docker's retry policy for layer downloads and uploads (moby's `distribution/xfer`): 5
//! attempts per layer; after the n-th failure a countdown of 5·n seconds, shown once a second
//! as "Retrying in 10 seconds", "Retrying in 9 seconds", … (so 5 + 10 + 15 + 20 s at most).
//!
//! `BERTH_REGISTRY_RETRY_SECOND_MS`, read by berthd, sets how long one second of that countdown
//! lasts, in milliseconds (moby's `waitDuration` test option). It exists for tests only, which
//! would otherwise wait 50 s to see a layer fail for good; unset, a second is a second.

use std::time::Duration;

use crate::error::Result;

/// Attempts per layer transfer (moby's `maxDownloadAttempts`, `maxUploadAttempts`).
pub const MAX_ATTEMPTS: u32 = 5;

/// The environment variable that shortens the countdown's seconds (tests only).
pub const SECOND_ENV: &str = "BERTH_REGISTRY_RETRY_SECOND_MS";

/// Seconds to wait after `failed` attempts failed: 5, 10, 15, 20.
pub fn delay_seconds(failed: u32) -> u32 {
    failed * 5
}

/// How long one second of the countdown lasts.
fn second() -> Duration {
    std::env::var(SECOND_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(1))
}

/// Docker's progress text: "Retrying in 5 seconds", "Retrying in 1 second".
pub fn countdown_text(left: u32) -> String {
    let unit = if left == 1 { "second" } else { "seconds" };
    format!("Retrying in {left} {unit}")
}

/// Waits out the countdown after `failed` failed attempts, giving `report` its text once a
/// second; an error from `report` (the client went away) ends the wait with that error.
pub async fn countdown(failed: u32, mut report: impl FnMut(String) -> Result<()>) -> Result<()> {
    let tick = second();
    for left in (1..=delay_seconds(failed)).rev() {
        report(countdown_text(left))?;
        tokio::time::sleep(tick).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_delays_and_words() {
        let delays: Vec<u32> = (1..MAX_ATTEMPTS).map(delay_seconds).collect();
        assert_eq!(delays, [5, 10, 15, 20]);
        assert_eq!(countdown_text(5), "Retrying in 5 seconds");
        assert_eq!(countdown_text(1), "Retrying in 1 second");
    }
}
