//! Human durations as the scenario files and command-line flags write them:
//! `"250ms"`, `"3s"`, `"2m"`, `"1h"`, optionally signed (`"+5s"`, `"-10s"`) where an offset
//! is meant.

use std::time::Duration;

/// Parses an unsigned duration such as `"250ms"` or `"1.5s"`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let (negative, magnitude) = parse_signed_parts(text)?;
    if negative {
        return Err(format!("expected a non-negative duration, got \"{text}\""));
    }
    Ok(magnitude)
}

/// Parses a duration that must be above zero (a period or a timeout: zero would make a
/// timer fire in a busy loop).
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    let duration = parse(text)?;
    if duration.is_zero() {
        return Err(format!("expected a duration above 0s, got \"{text}\""));
    }
    Ok(duration)
}

/// Parses a signed duration in milliseconds such as `"+5s"` or `"-250ms"`.
pub fn parse_signed_ms(text: &str) -> Result<i64, String> {
    let (negative, magnitude) = parse_signed_parts(text)?;
    let ms = magnitude.as_millis() as i64;
    Ok(if negative { -ms } else { ms })
}

fn parse_signed_parts(text: &str) -> Result<(bool, Duration), String> {
    let expected =
        || format!("expected a duration like \"250ms\", \"3s\", \"2m\" or \"1h\", got \"{text}\"");
    let trimmed = text.trim();
    let (negative, rest) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(expected)?;
    let (number, unit) = rest.split_at(split);
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(expected()),
    };
    // Exact decimal arithmetic (no f64): a duration written with nanosecond digits, as
    // `sim shrink` writes them, reads back to the same nanosecond.
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !digits_only(whole)
        || !digits_only(fraction)
        || whole.len() > 20
    {
        return Err(expected());
    }
    // Digits below a nanosecond cannot matter: keep at most 18 fraction digits.
    let fraction = &fraction[..fraction.len().min(18)];
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| expected())?
    };
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| expected())?
    };
    let nanos = whole
        .checked_mul(unit_nanos)
        .and_then(|w| w.checked_add(fraction.checked_mul(unit_nanos)? / scale))
        .ok_or_else(expected)?;
    if nanos > 1_000_000_000 * 1_000_000_000 {
        return Err(expected());
    }
    let nanos = u64::try_from(nanos).map_err(|_| expected())?;
    Ok((negative, Duration::from_nanos(nanos)))
}

/// Formats a duration the way [`parse`] reads it, exactly: the largest whole unit when
/// there is one, else milliseconds with as many decimals as the nanoseconds need.
pub fn format(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    let ms = nanos / 1_000_000;
    let sub_ms = nanos % 1_000_000;
    if sub_ms != 0 {
        let fraction = format!("{sub_ms:06}");
        format!("{ms}.{}ms", fraction.trim_end_matches('0'))
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) && ms > 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_signs() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_signed_ms("+5s"), Ok(5000));
        assert_eq!(parse_signed_ms("-10s"), Ok(-10_000));
        assert!(parse("-1s").is_err());
        assert!(parse("10").is_err());
        assert!(parse("ten s").is_err());
        assert!(parse("5 days").is_err());
        assert!(parse_positive("0ms").is_err());
        assert!(parse_positive("0.0s").is_err());
        assert_eq!(parse_positive("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn format_round_trips() {
        for text in [
            "250ms",
            "3s",
            "2m",
            "1500ms",
            "0ms",
            "22926.123457ms",
            "0.000001ms",
        ] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }

    #[test]
    fn every_nanosecond_survives_a_round_trip() {
        for nanos in [
            1,
            999,
            1_000_001,
            22_926_123_457,
            59_999_999_999,
            3_600_000_000_007,
        ] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
        assert_eq!(parse("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(
            parse("1.000000001s"),
            Ok(Duration::from_nanos(1_000_000_001))
        );
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert!(parse(".s").is_err());
        assert!(parse("1.2.3s").is_err());
        assert!(parse("2000000000s").is_err());
    }
}
