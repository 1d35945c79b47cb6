//! How the commands write times, durations and long texts in their tables.

use chrono::{DateTime, SecondsFormat, Utc};

/// A time to the second, UTC (`2026-12-03T14:46:02Z`); `-` for none.
pub fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".to_owned())
}

/// A time to the millisecond, UTC (`2026-12-03T14:46:02.153Z`); `-` for none.
pub fn time_ms(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| "-".to_owned())
}

/// The milliseconds from `start` to `end` (0 when `end` is before `start`).
pub fn millis_between(start: DateTime<Utc>, end: DateTime<Utc>) -> u64 {
    u64::try_from((end - start).num_milliseconds()).unwrap_or(0)
}

/// A duration as a person reads it: `152ms`, `3.5s`, `2m05s`, `1h02m`, `3d04h`.
pub fn duration_ms(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms}ms"),
        1..=59 => format!("{}.{}s", secs, (ms % 1000) / 100),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d{:02}h", secs / 86_400, (secs % 86_400) / 3600),
    }
}

/// The age of something created at `t`, kubectl style (`5s`, `3m`, `2h`, `4d`); `-` for
/// none.
pub fn age(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(t) = t else {
        return "-".to_owned();
    };
    let secs = millis_between(t, now) / 1000;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// `text` on one line and cut to `max` characters (the cut marked with `…`); `-` for an
/// empty text.
pub fn abbreviate(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    let one_line = one_line.trim();
    if one_line.is_empty() {
        return "-".to_owned();
    }
    if one_line.chars().count() <= max {
        return one_line.to_owned();
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text`, or `-` when empty.
pub fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_person_writes_them() {
        assert_eq!(duration_ms(152), "152ms");
        assert_eq!(duration_ms(3_512), "3.5s");
        assert_eq!(duration_ms(125_000), "2m05s");
        assert_eq!(duration_ms(3_720_000), "1h02m");
        assert_eq!(duration_ms(2 * 86_400_000 + 3_600_000), "2d01h");
    }

    #[test]
    fn a_long_text_is_cut_on_a_char_boundary_and_marked() {
        assert_eq!(abbreviate("NO_AVAILABLE_NODE: é é é", 10), "NO_AVAILA…");
        assert_eq!(abbreviate("short", 10), "short");
        assert_eq!(abbreviate("a\nb", 10), "a b");
        assert_eq!(abbreviate("", 10), "-");
    }

    #[test]
    fn times_to_the_millisecond() {
        let t = DateTime::from_timestamp_millis(1_700_000_000_153).unwrap();
        assert_eq!(time_ms(Some(t)), "2023-11-14T22:13:20.153Z");
        assert_eq!(time(Some(t)), "2023-11-14T22:13:20Z");
    }
}
