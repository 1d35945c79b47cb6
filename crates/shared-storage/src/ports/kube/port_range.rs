//! Port ranges as the id/port ConfigMap's annotations write them: `a-b`, `a+n` (the ports
//! `a..=a+n`) or a single port `a`; an empty value is an empty range. Reserved ranges are a
//! comma list of the same. A port is *allowed* when it lies in the range and in no
//! reserved range.

use std::ops::RangeInclusive;

/// A range with its reserved holes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortRanges {
    range: Option<RangeInclusive<i32>>,
    reserved: Vec<RangeInclusive<i32>>,
}

/// Parses one range; `Ok(None)` for an empty value.
pub(crate) fn parse_range(value: &str) -> Result<Option<RangeInclusive<i32>>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let port = |s: &str| -> Result<i32, String> {
        let s = s.trim();
        match s.parse::<i32>() {
            Ok(p) if (1..=65535).contains(&p) => Ok(p),
            Ok(p) => Err(format!("port {p} is outside 1-65535")),
            Err(_) => Err(format!("{s:?} is not a port")),
        }
    };
    let (low, high) = if let Some((a, b)) = value.split_once('-') {
        (port(a)?, port(b)?)
    } else if let Some((a, n)) = value.split_once('+') {
        let low = port(a)?;
        let n: i32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{:?} is not a port count", n.trim()))?;
        (low, port(&low.saturating_add(n).to_string())?)
    } else {
        let p = port(value)?;
        (p, p)
    };
    if high < low {
        return Err(format!("{value:?} ends before it starts"));
    }
    Ok(Some(low..=high))
}

impl PortRanges {
    /// The range `range` minus the comma list `reserved`; the error says which part is
    /// malformed.
    pub(crate) fn parse(range: &str, reserved: &str) -> Result<Self, String> {
        let range = parse_range(range)?;
        let reserved = reserved
            .split(',')
            .map(parse_range)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("reserved ranges: {e}"))?
            .into_iter()
            .flatten()
            .collect();
        Ok(PortRanges { range, reserved })
    }

    /// Whether `port` is in the range and not reserved.
    pub(crate) fn allows(&self, port: i32) -> bool {
        self.range.as_ref().is_some_and(|r| r.contains(&port))
            && !self.reserved.iter().any(|r| r.contains(&port))
    }

    /// The next allowed port after `stored` that `used` does not hold, wrapping from the end
    /// of the range back to its start. As in the original, the scan moves on before it
    /// tests, so the range start itself is never handed out; a stored value outside the
    /// range, or at its end, starts the scan at the range start.
    pub(crate) fn next_free(&self, stored: Option<i32>, used: impl Fn(i32) -> bool) -> Option<i32> {
        let range = self.range.as_ref()?;
        let (begin, end) = (*range.start(), *range.end());
        let mut port = match stored {
            Some(p) if p >= begin && p < end => p,
            _ => begin,
        };
        for _ in begin..end {
            port = if port >= end { begin + 1 } else { port + 1 };
            if self.allows(port) && !used(port) {
                return Some(port);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_notations_and_the_empty_range_parse() {
        assert_eq!(parse_range("36000-39999"), Ok(Some(36000..=39999)));
        assert_eq!(parse_range(" 5400+400 "), Ok(Some(5400..=5800)));
        assert_eq!(parse_range("5432"), Ok(Some(5432..=5432)));
        assert_eq!(parse_range(""), Ok(None));
        for bad in ["a-b", "10-5", "0-10", "60000+9999", "1-70000", "x"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reserved_ranges_are_holes_in_the_range() {
        let r = PortRanges::parse("100-200", "110-119, 150,").unwrap();
        assert!(r.allows(100) && r.allows(109) && r.allows(120) && r.allows(200));
        assert!(!r.allows(110) && !r.allows(119) && !r.allows(150));
        assert!(!r.allows(99) && !r.allows(201));
        assert!(PortRanges::parse("100-200", "1-x")
            .unwrap_err()
            .contains("reserved"));
        assert!(!PortRanges::parse("", "").unwrap().allows(100));
    }

    #[test]
    fn the_scan_skips_reserved_and_used_ports_and_never_returns_the_start() {
        let r = PortRanges::parse("100-110", "102-103").unwrap();
        assert_eq!(r.next_free(None, |_| false), Some(101));
        assert_eq!(r.next_free(Some(101), |_| false), Some(104));
        assert_eq!(r.next_free(Some(101), |p| p == 104), Some(105));
        assert_eq!(
            r.next_free(Some(99), |_| false),
            Some(101),
            "below the range"
        );
        assert_eq!(
            r.next_free(Some(500), |_| false),
            Some(101),
            "above the range"
        );
    }

    #[test]
    fn the_scan_wraps_from_the_end_to_just_after_the_start() {
        let r = PortRanges::parse("100-110", "").unwrap();
        assert_eq!(r.next_free(Some(109), |_| false), Some(110));
        assert_eq!(r.next_free(Some(110), |_| false), Some(101));
        assert_eq!(r.next_free(Some(108), |p| p > 108), Some(101));
        assert_eq!(r.next_free(Some(105), |p| p != 103), Some(103));
        assert_eq!(r.next_free(Some(105), |_| true), None, "all used");
        assert_eq!(
            r.next_free(Some(105), |p| p != 100),
            None,
            "the start never"
        );
        assert_eq!(
            PortRanges::parse("100", "")
                .unwrap()
                .next_free(None, |_| false),
            None
        );
    }
}
