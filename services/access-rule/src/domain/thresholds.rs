//! The rules' thresholds and the tripwire's settings, with [`Ratio`], the
//! exact share they are stated in.

use std::time::Duration;

use serde::Serialize;

/// A share between 0 and 1, held in parts per million so that comparisons
/// are exact integer arithmetic (`700 > 10 % of 7000` must not depend on
/// floating-point rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio(u32);

impl Serialize for Ratio {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl Ratio {
    const ONE: i128 = 1_000_000;

    pub fn parse(name: &str, v: f64) -> anyhow::Result<Self> {
        if !(0.0..=1.0).contains(&v) {
            anyhow::bail!("{name}={v} must be between 0 and 1");
        }
        Ok(Self((v * Self::ONE as f64).round() as u32))
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / Self::ONE as f64
    }

    /// `part / whole > self`, exactly; false when `whole` is zero and `part`
    /// is zero.
    pub fn exceeded_by(self, part: i64, whole: i64) -> bool {
        i128::from(part) * Self::ONE > i128::from(self.0) * i128::from(whole)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TripwireConfig {
    #[serde(rename = "window_seconds", serialize_with = "secs")]
    pub window: Duration,
    pub ratio: Ratio,
    pub min_population: i64,
    #[serde(rename = "suspend_seconds", serialize_with = "secs")]
    pub suspend: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// The thresholds of the rules. The defaults are the rules of the User
/// Access Management design (docs/architecture.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RulesConfig {
    pub scam_flag_limit: i64,
    pub card_min_count: i64,
    pub zip_ratio_limit: Ratio,
    pub chargeback_ratio_limit: Ratio,
    pub tripwire: TripwireConfig,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            scam_flag_limit: 2,
            card_min_count: 3,
            zip_ratio_limit: Ratio(750_000),
            chargeback_ratio_limit: Ratio(100_000),
            tripwire: TripwireConfig {
                window: Duration::from_secs(300),
                ratio: Ratio(50_000),
                min_population: 20,
                suspend: Duration::from_secs(3600),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ratios_show_as_fractions() {
        let v = serde_json::to_value(RulesConfig::default()).unwrap();
        assert_eq!(v["zip_ratio_limit"], json!(0.75));
        assert_eq!(v["chargeback_ratio_limit"], json!(0.1));
        assert_eq!(v["tripwire"]["ratio"], json!(0.05));
    }
}
