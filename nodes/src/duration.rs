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
    let value: f64 = number.parse().map_err(|_| expected())?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(expected()),
    };
    if !seconds.is_finite() || seconds > 1e9 {
        return Err(expected());
    }
    Ok((negative, Duration::from_secs_f64(seconds)))
}

/// Formats a duration the way [`parse`] reads it, choosing the largest exact unit.
pub fn format(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
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
        for text in ["250ms", "3s", "2m", "1500ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
