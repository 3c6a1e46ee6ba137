//! Durations as kubectl's flags take them (Go's `time.ParseDuration`):
//! `30s`, `5m`, `1h30m`, `1.5h`, `250ms`; a bare `0` means zero.

use std::time::Duration;

/// Parses a Go-style duration. Negative durations are refused: ctl's
/// flags use 0 for "no limit".
///
/// # Errors
/// Go's wording: `time: invalid duration "x"`, `time: missing unit in
/// duration "5"`, `time: unknown unit "d" in duration "5d"`.
pub fn parse(given: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {given:?}");
    let text = given.strip_prefix('+').unwrap_or(given);
    if text.starts_with('-') {
        return Err(format!("{given:?} is negative; use 0 for no limit"));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let seconds = match unit {
            "" => return Err(format!("time: missing unit in duration {given:?}")),
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("time: unknown unit {other:?} in duration {given:?}")),
        };
        total += value * seconds;
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        for (text, expected) in [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5h", Duration::from_secs(5400)),
            ("250ms", Duration::from_millis(250)),
            ("+2s", Duration::from_secs(2)),
        ] {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refuses_what_go_refuses_with_its_words() {
        assert_eq!(parse("5"), Err("time: missing unit in duration \"5\"".to_string()));
        assert_eq!(
            parse("5d"),
            Err("time: unknown unit \"d\" in duration \"5d\"".to_string())
        );
        assert_eq!(parse("soon"), Err("time: invalid duration \"soon\"".to_string()));
        assert_eq!(parse(""), Err("time: invalid duration \"\"".to_string()));
        assert!(parse("-1s").is_err());
    }
}
