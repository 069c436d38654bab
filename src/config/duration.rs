//! Durations as the config and the command line write them: whole numbers
//! with the units `ms`, `s`, `m`, `h` and `d`, one or several (`30s`, `5m`,
//! `1h30m`). Anything else, such as `5M` or `1.5h`, is refused with a message
//! that lists the units; durations are printed back in the same notation.

use std::time::Duration;

/// The units, largest first, with their length.
const UNITS: [(&str, Duration); 5] = [
    ("d", Duration::from_secs(86_400)),
    ("h", Duration::from_secs(3_600)),
    ("m", Duration::from_secs(60)),
    ("s", Duration::from_secs(1)),
    ("ms", Duration::from_millis(1)),
];

/// The JSON Schema pattern of a duration string.
pub const PATTERN: &str = r"^\s*([0-9]+\s*(ms|s|m|h|d)\s*)+$";

/// What the error messages suggest.
const EXAMPLES: &str = "use whole numbers with ms, s, m, h or d, as in 30s, 5m or 1h30m";

/// Reads a duration such as `30s`, `5m`, `1h30m` or `1d`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = |why: String| {
        format!(
            "`{}` is not a duration: {why}; {EXAMPLES}",
            text.escape_debug()
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad("it is empty".into()));
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad(format!("expected a number at `{rest}`")));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("the number is too large".into()))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..unit_len];
        let Some((_, size)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(bad(match unit {
                "" if rest.starts_with('.') => "fractions are not accepted".to_owned(),
                "" => format!("`{number}` has no unit"),
                u => format!("unknown unit `{u}`"),
            }));
        };
        let part = u32::try_from(number)
            .ok()
            .and_then(|n| size.checked_mul(n))
            .ok_or_else(|| bad("it is too long".into()))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| bad("it is too long".into()))?;
        rest = rest[unit_len..].trim_start();
    }
    Ok(total)
}

/// A reader of durations of at least `min`, for a command-line flag: a
/// shorter one (`--check-interval 0s`) is a usage error naming the minimum.
pub fn at_least(
    min: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text| {
        let d = parse(text)?;
        if d < min {
            return Err(format!("`{text}` is too short: at least {}", format(min)));
        }
        Ok(d)
    }
}

/// Prints `d` in the notation [`parse`] reads, largest units first: `5m`,
/// `1d`, `1h30m`, `250ms`.
pub fn format(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let mut left = d;
    let mut out = String::new();
    for (unit, size) in UNITS {
        let n = left.as_nanos() / size.as_nanos();
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            left -= size * n as u32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_below_its_minimum_is_refused_naming_it() {
        let interval = at_least(Duration::from_millis(10));
        assert_eq!(interval("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(
            interval("0s"),
            Err("`0s` is too short: at least 10ms".to_owned())
        );
        assert!(interval("soon").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn reads_the_documented_units() {
        let s = Duration::from_secs;
        for (text, want) in [
            ("30s", s(30)),
            ("5m", s(300)),
            ("1h", s(3600)),
            ("1d", s(86_400)),
            ("250ms", Duration::from_millis(250)),
            ("1h30m", s(5400)),
            (" 1h 30m ", s(5400)),
            ("90s", s(90)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_the_rest_and_lists_the_units() {
        for (text, why) in [
            ("5M", "unknown unit `M`"),
            ("5months", "unknown unit `months`"),
            ("1.5h", "fractions are not accepted"),
            ("soon", "expected a number at `soon`"),
            ("30", "has no unit"),
            ("", "it is empty"),
            ("99999999999999999999s", "too large"),
            ("9999999999d", "too long"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.contains("ms, s, m, h or d"), "{text}: {e}");
        }
    }

    #[test]
    fn prints_in_the_same_notation() {
        for text in ["5m", "1d", "1h30m", "250ms", "30s", "1d12h", "2m5s"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
