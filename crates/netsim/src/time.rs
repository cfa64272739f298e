//! Virtual time: integer microseconds, and durations written with units in scenario files.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span of virtual time in microseconds. In files it is a string with a unit: `"500us"`,
/// `"250ms"`, `"10s"`, `"2m"`, `"1h"`; fractions are allowed (`"1.5s"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimDuration {
    pub us: u64,
}

impl SimDuration {
    pub const ZERO: SimDuration = SimDuration { us: 0 };

    pub const fn from_us(us: u64) -> Self {
        SimDuration { us }
    }

    pub const fn from_ms(ms: u64) -> Self {
        SimDuration { us: ms * 1_000 }
    }

    pub const fn from_secs(secs: u64) -> Self {
        SimDuration {
            us: secs * 1_000_000,
        }
    }

    pub fn as_ms_f64(self) -> f64 {
        self.us as f64 / 1_000.0
    }
}

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected a duration with a unit such as \"250ms\", \"10s\" or \"2m\" (units: us, ms, s, m, h), found {found:?}")]
pub struct DurationError {
    pub found: String,
}

impl FromStr for SimDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || DurationError {
            found: text.to_string(),
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| c.is_ascii_alphabetic())
            .ok_or_else(error)?;
        let (number, unit) = trimmed.split_at(split);
        let us_per_unit: f64 = match unit.trim() {
            "us" | "µs" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "m" | "min" => 60e6,
            "h" => 3_600e6,
            _ => return Err(error()),
        };
        let number: f64 = number.trim().parse().map_err(|_| error())?;
        let us = number * us_per_unit;
        // Refuse what cannot be a span of virtual time rather than saturating silently.
        if !us.is_finite() || us < 0.0 || us > u64::MAX as f64 {
            return Err(error());
        }
        Ok(SimDuration {
            us: us.round() as u64,
        })
    }
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.us;
        if us == 0 {
            write!(f, "0s")
        } else if us % 1_000_000 == 0 {
            write!(f, "{}s", us / 1_000_000)
        } else if us % 1_000 == 0 {
            write!(f, "{}ms", us / 1_000)
        } else {
            write!(f, "{us}us")
        }
    }
}

impl Serialize for SimDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SimDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SimDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "a duration string with a unit, such as \"250ms\" or \"10s\""
                )
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<SimDuration, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_fractions() {
        assert_eq!("250ms".parse(), Ok(SimDuration::from_ms(250)));
        assert_eq!("10s".parse(), Ok(SimDuration::from_secs(10)));
        assert_eq!("1.5s".parse(), Ok(SimDuration::from_ms(1_500)));
        assert_eq!("2m".parse(), Ok(SimDuration::from_secs(120)));
        assert_eq!("7us".parse(), Ok(SimDuration::from_us(7)));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "10", "ms", "10 parsecs", "-1s", "1e400s", "NaNs"] {
            assert!(
                bad.parse::<SimDuration>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        for text in ["0s", "10s", "250ms", "7us"] {
            assert_eq!(text.parse::<SimDuration>().unwrap().to_string(), text);
        }
    }
}
