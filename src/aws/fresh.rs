//! Fresh keys look stale for a few seconds: IAM is eventually consistent, and a key just created (by
//! hand, or by Vault's AWS secrets engine) can be rejected by STS for 5–10 s (hashicorp/vault#3115,
//! #8413). When the fallback credentials are rejected, tfshim asks again with backoff for a bounded
//! window (`TFSHIM_FRESH_KEY_WAIT`) before concluding that no working credentials exist. Only a
//! definite rejection is asked again: a network failure, a timeout or anything unknown ends the
//! checks at once (that is no verdict, and waiting would only delay terraform). Pure.

use std::time::Duration;

/// The variable that sets the window, in seconds (fractions allowed; `0` turns the waiting off;
/// at most 120; read and checked in `settings`).
pub const VAR: &str = "TFSHIM_FRESH_KEY_WAIT";
/// The first pause, doubled after each rejection up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// Short enough that a key which starts working is noticed within 2 s.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// The pauses before each new check: 0.5 s, 1 s, 2 s, 2 s, … adding up to exactly `window`.
pub fn pauses(window: Duration) -> Vec<Duration> {
    let mut out = Vec::new();
    let (mut left, mut next) = (window, FIRST_PAUSE);
    while !left.is_zero() {
        let pause = next.min(left);
        out.push(pause);
        left -= pause;
        next = (next * 2).min(MAX_PAUSE);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_back_off_and_add_up_to_the_window() {
        let ms = |v: Vec<Duration>| v.iter().map(|d| d.as_millis()).collect::<Vec<_>>();
        assert_eq!(
            ms(pauses(Duration::from_secs(10))),
            [500, 1000, 2000, 2000, 2000, 2000, 500]
        );
        assert_eq!(ms(pauses(Duration::from_millis(700))), [500, 200]);
        assert!(pauses(Duration::ZERO).is_empty());
        let long = pauses(Duration::from_secs(120));
        assert_eq!(long.iter().sum::<Duration>(), Duration::from_secs(120));
        assert!(long.len() <= 62);
    }
}
