//! How numbers read on a wall: thousands grouped, a fixed number of decimals, large values
//! compacted (1.2k, 3.4M) when the board asks, and a unit after them. Shared by every widget
//! that shows a number, so a figure looks the same in a counter and on a leaderboard.

/// How one widget writes its numbers, from its options in the board file.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NumberStyle<'a> {
    pub decimals: u8,
    pub compact: bool,
    pub unit: Option<&'a str>,
}

/// Past this many decimals the digits are noise on a screen read from across a room.
const MAX_DECIMALS: u8 = 6;
const COMPACT_STEPS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")];

impl<'a> NumberStyle<'a> {
    /// Grouped digits (never compacted), `decimals` places, and the unit.
    pub fn plain(decimals: u8, unit: Option<&'a str>) -> Self {
        NumberStyle {
            decimals,
            compact: false,
            unit,
        }
    }

    /// `value` as the widget shows it, unit included.
    pub fn format(&self, value: f64) -> String {
        let number = if self.compact {
            compact(value, self.decimals)
        } else {
            grouped(value, self.decimals)
        };
        match self.unit {
            None | Some("") => number,
            // Percent and degrees sit against the number; words get a space.
            Some(unit @ ("%" | "°" | "°C" | "°F")) => format!("{number}{unit}"),
            Some(unit) => format!("{number} {unit}"),
        }
    }
}

/// Thousands separated with commas, `decimals` places, no "-0".
pub fn grouped(value: f64, decimals: u8) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let decimals = decimals.min(MAX_DECIMALS) as usize;
    // Halves round away from zero, as people do; `format!` alone would round 0.25 to 0.2.
    let fixed = format!("{:.*}", decimals, round_to(value.abs(), decimals as u8));
    let (whole, fraction) = match fixed.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (fixed.as_str(), None),
    };
    let mut out = String::with_capacity(fixed.len() + whole.len() / 3 + 1);
    let is_zero = fixed.bytes().all(|b| b == b'0' || b == b'.');
    if value < 0.0 && !is_zero {
        out.push('-');
    }
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

/// 1.2k, 3.4M, 5B: one decimal (or `decimals`, if more) under the suffix, trailing zeros
/// dropped; values under a thousand are written in full.
pub fn compact(value: f64, decimals: u8) -> String {
    let places = decimals.max(1);
    for (i, (size, suffix)) in COMPACT_STEPS.iter().enumerate() {
        if value.abs() < *size {
            continue;
        }
        let scaled = round_to(value / size, places);
        // 999,950 rounds to 1000.0k: write it as the next unit up instead.
        if scaled.abs() >= 1000.0 && i > 0 {
            let (bigger, suffix) = COMPACT_STEPS[i - 1];
            return format!(
                "{}{suffix}",
                trimmed(round_to(value / bigger, places), places)
            );
        }
        return format!("{}{suffix}", trimmed(scaled, places));
    }
    let rounded = round_to(value, places);
    if rounded.abs() >= 1000.0 {
        return compact(rounded, decimals);
    }
    grouped(value, decimals)
}

fn round_to(value: f64, places: u8) -> f64 {
    let scale = 10f64.powi(places.into());
    (value * scale).round() / scale
}

/// `places` decimals with trailing zeros removed: 1.50 → "1.5", 2.00 → "2".
fn trimmed(value: f64, places: u8) -> String {
    let text = grouped(value, places);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// "just now", "45 s ago", "3 min ago": how long before `now_ms` something happened.
pub fn ago(now_ms: f64, at_ms: f64) -> String {
    let seconds = ((now_ms - at_ms) / 1000.0).max(0.0) as u64;
    if seconds < 5 {
        "just now".into()
    } else {
        format!("{} ago", age(seconds))
    }
}

/// How long ago, in the largest whole unit: "45 s", "3 min", "2 h", "4 days".
pub fn age(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3_600 => format!("{} min", seconds / 60),
        3_600..86_400 => format!("{} h", seconds / 3_600),
        86_400..172_800 => "1 day".into(),
        _ => format!("{} days", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_time_ago() {
        assert_eq!(ago(10_000.0, 8_000.0), "just now");
        // A clock a little behind the server's is not "in the future".
        assert_eq!(ago(10_000.0, 12_000.0), "just now");
        assert_eq!(ago(100_000.0, 55_000.0), "45 s ago");
        assert_eq!(ago(400_000.0, 200_000.0), "3 min ago");
    }

    #[test]
    fn grouped_numbers_keep_their_decimals() {
        assert_eq!(grouped(0.0, 0), "0");
        assert_eq!(grouped(999.0, 0), "999");
        assert_eq!(grouped(1280.0, 0), "1,280");
        assert_eq!(grouped(1234567.0, 0), "1,234,567");
        assert_eq!(grouped(-4321.25, 1), "-4,321.3");
        assert_eq!(grouped(12.04, 2), "12.04");
        assert_eq!(grouped(12.5, 0), "13");
        assert_eq!(grouped(0.5, 2), "0.50");
        assert_eq!(grouped(-0.04, 1), "0.0");
        assert_eq!(grouped(f64::NAN, 0), "–");
    }

    #[test]
    fn compact_numbers_take_a_suffix() {
        assert_eq!(compact(999.0, 0), "999");
        assert_eq!(compact(1000.0, 0), "1k");
        assert_eq!(compact(1234.0, 0), "1.2k");
        assert_eq!(compact(3_400_000.0, 0), "3.4M");
        assert_eq!(compact(-25_300.0, 0), "-25.3k");
        assert_eq!(compact(999_950.0, 0), "1M");
        assert_eq!(compact(999.96, 0), "1k");
        assert_eq!(compact(7_250_000_000.0, 2), "7.25B");
        assert_eq!(compact(2e15, 0), "2,000T");
        assert_eq!(compact(12.34, 1), "12.3");
    }

    #[test]
    fn units_follow_the_number() {
        let latency = NumberStyle {
            decimals: 1,
            compact: false,
            unit: Some("ms"),
        };
        assert_eq!(latency.format(41.27), "41.3 ms");
        let share = NumberStyle {
            unit: Some("%"),
            ..NumberStyle::default()
        };
        assert_eq!(share.format(99.6), "100%");
        let orders = NumberStyle {
            compact: true,
            ..NumberStyle::default()
        };
        assert_eq!(orders.format(48_213.0), "48.2k");
    }

    #[test]
    fn ages_read_in_their_largest_unit() {
        assert_eq!(age(0), "0 s");
        assert_eq!(age(59), "59 s");
        assert_eq!(age(60), "1 min");
        assert_eq!(age(3_599), "59 min");
        assert_eq!(age(7_200), "2 h");
        assert_eq!(age(86_400), "1 day");
        assert_eq!(age(3 * 86_400 + 5), "3 days");
    }
}
