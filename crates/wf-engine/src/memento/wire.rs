//! Wire details of a memento shared by the runtime's serde attributes: how times are written
//! and read, and how defaults are left out and read back.

use serde::{Deserialize, Deserializer};

/// Reads `null` or a missing value as the type's default (the original wrote `null` for an
/// empty map or list).
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Whether a counter is at its default, so it is left out.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
pub(crate) fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Times: written as RFC 3339 in UTC with millisecond precision, always 24 bytes
/// (`2021-07-21T08:32:47.492Z`), the shortest RFC 3339 form that keeps the milliseconds at a
/// fixed width (trimming the fraction's trailing zeros would save 0.1 byte a time on average
/// and make a memento's size depend on the clock). Read: any RFC 3339 time; the original's
/// `2021-07-21 08:32:47.492` (space or `T`, any fraction, no zone: read as UTC); `null`, an
/// empty string and the zero time of the original (`0001-01-01 00:00:00`) read as no time.
pub(crate) mod time {
    use std::fmt;

    use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Timelike, Utc};
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes `t` into `buf` in the 24-byte form; `None` for a time it cannot hold (a year
    /// outside 0..=9999, a leap second), which [`serialize`] then leaves to chrono.
    pub(crate) fn format(t: &DateTime<Utc>, buf: &mut [u8; 24]) -> Option<()> {
        let n = t.naive_utc();
        let year = u32::try_from(n.year()).ok().filter(|y| *y <= 9999)?;
        let nanos = n.nanosecond();
        if nanos >= 1_000_000_000 {
            return None;
        }
        let two = |buf: &mut [u8; 24], at: usize, v: u32| {
            buf[at] = b'0' + (v / 10) as u8;
            buf[at + 1] = b'0' + (v % 10) as u8;
        };
        two(buf, 0, year / 100);
        two(buf, 2, year % 100);
        buf[4] = b'-';
        two(buf, 5, n.month());
        buf[7] = b'-';
        two(buf, 8, n.day());
        buf[10] = b'T';
        two(buf, 11, n.hour());
        buf[13] = b':';
        two(buf, 14, n.minute());
        buf[16] = b':';
        two(buf, 17, n.second());
        buf[19] = b'.';
        let millis = nanos / 1_000_000;
        buf[20] = b'0' + (millis / 100) as u8;
        two(buf, 21, millis % 100);
        buf[23] = b'Z';
        Some(())
    }

    pub(crate) fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let Some(t) = time else {
            return s.serialize_none();
        };
        let mut buf = [0u8; 24];
        match format(t, &mut buf).and_then(|()| std::str::from_utf8(&buf).ok()) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        }
    }

    /// Parses a stored time; `Ok(None)` for no time.
    pub(crate) fn parse(text: &str) -> Result<Option<DateTime<Utc>>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let time = if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            t.to_utc()
        } else if let Ok(t) = text.parse::<DateTime<chrono::FixedOffset>>() {
            t.to_utc()
        } else {
            let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
                .map_err(|e| {
                    format!(
                        "invalid time `{text}` ({e}): expected RFC 3339 or \
                         `YYYY-MM-DD HH:MM:SS[.fff]`"
                    )
                })?;
            naive.and_utc()
        };
        // The original's zero time means "not set".
        let zero = time.year() == 1 && time.ordinal() == 1 && time.num_seconds_from_midnight() == 0;
        Ok((!zero).then_some(time))
    }

    struct TimeVisitor;

    impl<'de> Visitor<'de> for TimeVisitor {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a time (RFC 3339 or `YYYY-MM-DD HH:MM:SS.fff`) or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(TimeVisitor)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse(v).map_err(E::custom)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        d.deserialize_option(TimeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::time;
    use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

    #[test]
    fn times_are_written_as_24_byte_rfc3339_with_milliseconds() {
        for t in [
            Utc.with_ymd_and_hms(2021, 7, 21, 8, 32, 47).unwrap()
                + chrono::Duration::milliseconds(492),
            Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap(),
            DateTime::from_timestamp(1_764_662_512, 7_654_321).unwrap(),
        ] {
            let mut buf = [0u8; 24];
            time::format(&t, &mut buf).unwrap();
            assert_eq!(
                std::str::from_utf8(&buf).unwrap(),
                t.to_rfc3339_opts(SecondsFormat::Millis, true)
            );
        }
    }

    #[test]
    fn the_originals_times_without_a_zone_read_as_utc() {
        let t = time::parse("2021-07-21 08:32:47.492").unwrap().unwrap();
        assert_eq!(
            t.to_rfc3339_opts(SecondsFormat::Millis, true),
            "2021-07-21T08:32:47.492Z"
        );
        let t = time::parse("2021-07-21 08:32:47").unwrap().unwrap();
        assert_eq!(t.timestamp(), 1_626_856_367);
        assert_eq!(
            time::parse("2021-07-21T10:32:47.492+02:00").unwrap(),
            time::parse("2021-07-21 08:32:47.492").unwrap()
        );
    }

    #[test]
    fn empty_and_zero_times_read_as_no_time_and_garbage_is_an_error() {
        assert_eq!(time::parse("").unwrap(), None);
        assert_eq!(time::parse("0001-01-01 00:00:00.000").unwrap(), None);
        assert_eq!(time::parse("0001-01-01T00:00:00Z").unwrap(), None);
        let err = time::parse("yesterday").unwrap_err();
        assert!(err.contains("`yesterday`"), "{err}");
    }
}
