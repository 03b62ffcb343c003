//! Quantities written as people write them: durations (`90s`, `10m`, `3h`,
//! `1h30m`, `250ms`), request rates (`100/s`, `6000/min`), replica counts.
//!
//! Each type deserializes from YAML and rejects what a person would not
//! mean: a duration or rate without a unit, a negative count. The messages
//! say what was wrong and what to write instead.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use sim_core::SimDuration;
use std::fmt;

/// A duration from a scenario file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub SimDuration);

/// Parses `1h30m`, `90s`, `250ms`, `1.5s`, `100us`, `0`.
pub fn parse_duration(s: &str) -> Result<SimDuration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(SimDuration::ZERO);
    }
    if t.is_empty() {
        return Err("empty duration; write a number with a unit, e.g. 90s, 10m, 3h".into());
    }
    if t.starts_with('-') {
        return Err(format!(
            "duration `{t}` is negative; durations are 0 or more"
        ));
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "`{t}` is not a duration; write e.g. 90s, 10m, 3h, 1h30m, 250ms"
            ));
        }
        let (num, after) = rest.split_at(num_len);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("`{num}` in `{t}` is not a number"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => {
                return Err(format!(
                    "duration `{t}` has no unit; write e.g. {t}s, {t}m or {t}ms"
                ))
            }
            other => {
                return Err(format!(
                    "unknown unit `{other}` in duration `{t}`; units: ns, us, ms, s, m, h, d"
                ))
            }
        };
        total += value * scale;
        rest = next;
    }
    Ok(SimDuration::from_secs_f64(total))
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a duration with a unit, like 90s, 10m, 3h or 250ms")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
                parse_duration(s).map(Duration).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
                if n == 0 {
                    Ok(Duration(SimDuration::ZERO))
                } else {
                    Err(E::custom(format!(
                        "duration `{n}` has no unit; write e.g. {n}s, {n}m or {n}ms"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "duration `{n}` has no unit and is negative; write e.g. 90s"
                )))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "duration `{n}` has no unit; write e.g. {n}s"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A mean request rate \[requests/s\].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate(pub f64);

/// Parses `100/s`, `6000/min`, `2.5/s`, `36000/h`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let Some((num, unit)) = t.split_once('/') else {
        return Err(format!(
            "rate `{t}` has no unit; write e.g. {t}/s or {t}/min"
        ));
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{num}` in rate `{t}` is not a number"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("rate `{t}` must be 0 or more"));
    }
    let per_s = match unit.trim() {
        "s" => 1.0,
        "min" | "m" => 1.0 / 60.0,
        "h" => 1.0 / 3600.0,
        other => {
            return Err(format!(
                "unknown rate unit `/{other}` in `{t}`; write /s, /min or /h"
            ))
        }
    };
    Ok(value * per_s)
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a rate with a unit, like 100/s or 6000/min")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Rate, E> {
                parse_rate(s).map(Rate).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Rate, E> {
                Err(E::custom(format!(
                    "rate `{n}` has no unit; write {n}/s or {n}/min"
                )))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Rate, E> {
                Err(E::custom(format!(
                    "rate `{n}` is negative and has no unit; write e.g. 100/s"
                )))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Rate, E> {
                Err(E::custom(format!(
                    "rate `{n}` has no unit; write {n}/s or {n}/min"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A count of things (replicas, pods, workers): a whole number, 0 or more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count(pub u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a whole number, 0 or more")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Count, E> {
                u32::try_from(n)
                    .map(Count)
                    .map_err(|_| E::custom(format!("{n} is too large (at most {})", u32::MAX)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Count, E> {
                if n < 0 {
                    Err(E::custom(format!(
                        "count {n} is negative; it must be a whole number, 0 or more"
                    )))
                } else {
                    self.visit_u64(n as u64)
                }
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Count, E> {
                Err(E::custom(format!("count {n} is not a whole number")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Count, E> {
                Err(E::custom(format!(
                    "count `{s}` is text; write a whole number without quotes"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes: `1460`, `300B`, `64KiB`, `1MB` (SI: 1 kB = 1000 B; IEC: 1 KiB = 1024 B).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u64);

/// Parses `300B`, `1kB`, `1KB`, `64KiB`, `1MB`, `1MiB`, `1GB`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{t}` is not a size; write e.g. 1460, 300B, 64KiB, 1MB"))?;
    let scale = match unit.trim() {
        "" | "B" => 1.0,
        "kB" | "KB" => 1e3,
        "KiB" => 1024.0,
        "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        "GB" => 1e9,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{t}`; units: B, KB, KiB, MB, MiB, GB, GiB"
            ))
        }
    };
    let bytes = value * scale;
    if bytes.fract() != 0.0 || bytes > 1e15 {
        return Err(format!(
            "size `{t}` is not a whole number of bytes (at most 1 PB)"
        ));
    }
    Ok(bytes as u64)
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a size in bytes, like 1460, 300B or 1MB")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Bytes, E> {
                Ok(Bytes(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Bytes, E> {
                u64::try_from(n)
                    .map(Bytes)
                    .map_err(|_| E::custom(format!("size {n} is negative")))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Bytes, E> {
                Err(E::custom(format!(
                    "size {n} is not a whole number of bytes"
                )))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Bytes, E> {
                parse_bytes(s).map(Bytes).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A link bandwidth \[bit/s\]: `100Mbit/s`, `10Gbit/s`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bandwidth(pub f64);

/// Parses `100Mbit/s`, `10Gbit/s`, `1.5Gbit/s`, `64kbit/s`, `1e9bit/s`.
pub fn parse_bandwidth(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let Some(body) = t.strip_suffix("bit/s") else {
        return Err(format!(
            "bandwidth `{t}` needs a unit; write e.g. 100Mbit/s or 10Gbit/s"
        ));
    };
    let (num, scale) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 1e3),
        Some('M') => (&body[..body.len() - 1], 1e6),
        Some('G') => (&body[..body.len() - 1], 1e9),
        Some('T') => (&body[..body.len() - 1], 1e12),
        _ => (body, 1.0),
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{num}` in bandwidth `{t}` is not a number"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("bandwidth `{t}` must be more than 0"));
    }
    Ok(value * scale)
}

impl<'de> Deserialize<'de> for Bandwidth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bandwidth;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a bandwidth with a unit, like 100Mbit/s")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Bandwidth, E> {
                parse_bandwidth(s).map(Bandwidth).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Bandwidth, E> {
                Err(E::custom(format!(
                    "bandwidth `{n}` has no unit; write e.g. {n}Mbit/s"
                )))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Bandwidth, E> {
                Err(E::custom(format!(
                    "bandwidth `{n}` has no unit; write e.g. {n}Mbit/s"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A CPU quantity as Kubernetes writes it (`100m`, `0.5`, `2`) \[millicores\].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu(pub u32);

/// Parses `100m`, `1500m`, `0.5`, `2`.
pub fn parse_cpu(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('m') {
        Some(n) => (n, 1.0),
        None => (t, 1000.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("CPU `{t}` is not a quantity; write e.g. 100m, 500m or 2"))?;
    let m = v * scale;
    if !m.is_finite() || !(1.0..=1e9).contains(&m) || m.fract() != 0.0 {
        return Err(format!(
            "CPU `{t}` must be a whole number of millicores, at least 1m"
        ));
    }
    Ok(m as u32)
}

impl<'de> Deserialize<'de> for Cpu {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cpu;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a CPU quantity like 100m, 500m or 2")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Cpu, E> {
                parse_cpu(s).map(Cpu).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Cpu, E> {
                parse_cpu(&n.to_string()).map(Cpu).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Cpu, E> {
                parse_cpu(&n.to_string()).map(Cpu).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Cpu, E> {
                parse_cpu(&n.to_string()).map(Cpu).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A memory quantity as Kubernetes writes it (`170Mi`, `2Gi`, `100M`) \[bytes\].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory(pub u64);

/// Parses `170Mi`, `2Gi`, `512Ki`, `100M`, `1G`.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let units: [(&str, f64); 6] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ];
    let Some((num, scale)) = units
        .iter()
        .find_map(|(u, k)| t.strip_suffix(u).map(|n| (n, *k)))
    else {
        return Err(format!(
            "memory `{t}` has no unit; write e.g. 170Mi, 2Gi or 100M"
        ));
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{num}` in memory `{t}` is not a number"))?;
    let b = v * scale;
    if !b.is_finite() || !(1.0..=1e15).contains(&b) {
        return Err(format!("memory `{t}` is out of range"));
    }
    Ok(b.round() as u64)
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Memory;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a memory quantity like 170Mi or 2Gi")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Memory, E> {
                parse_memory(s).map(Memory).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Memory, E> {
                Err(E::custom(format!(
                    "memory `{n}` has no unit; write e.g. {n}Mi"
                )))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Memory, E> {
                Err(E::custom(format!(
                    "memory `{n}` has no unit; write e.g. 170Mi"
                )))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Memory, E> {
                Err(E::custom(format!(
                    "memory `{n}` has no unit; write e.g. 170Mi"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// The quantities' JSON Schema (`knsim schema`): what an editor can check as
/// the user types. The parsers above stay the authority: a pattern here may
/// admit a value they refuse (with their message), never the reverse.
mod schema {
    use super::{Bandwidth, Bytes, Count, Cpu, Duration, Memory, Rate};
    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
    use std::borrow::Cow;

    /// A number as Rust's `f64` parser reads it (`1`, `2.5`, `.5`, `1e9`).
    macro_rules! number {
        () => {
            r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
        };
    }

    macro_rules! quantity {
        ($t:ty, $name:literal, $schema:tt) => {
            impl JsonSchema for $t {
                fn schema_name() -> Cow<'static, str> {
                    $name.into()
                }
                fn json_schema(_: &mut SchemaGenerator) -> Schema {
                    json_schema!($schema)
                }
            }
        };
    }

    quantity!(Duration, "Duration", {
        "description": "A duration with a unit (ns, us, ms, s, m, h, d): 90s, 10m, 1h30m, 250ms; or 0",
        "anyOf": [
            {"type": "string", "pattern": concat!(r"^\s*(0|(", number!(), r"(ns|us|µs|ms|s|min|m|h|d))+)\s*$")},
            {"const": 0}
        ]
    });
    quantity!(Rate, "Rate", {
        "description": "A mean rate with a unit: 100/s, 6000/min, 36000/h",
        "type": "string",
        "pattern": concat!(r"^\s*", number!(), r"\s*/\s*(s|min|m|h)\s*$")
    });
    quantity!(Count, "Count", {
        "description": "A whole number, 0 or more",
        "type": "integer",
        "minimum": 0,
        "maximum": u32::MAX
    });
    quantity!(Bytes, "Bytes", {
        "description": "A size in bytes: 1460, 300B, 64KiB, 1MB (kB/MB/GB are SI, KiB/MiB/GiB binary)",
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": concat!(r"^\s*", number!(), r"\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)?\s*$")}
        ]
    });
    quantity!(Bandwidth, "Bandwidth", {
        "description": "A link bandwidth: 100Mbit/s, 10Gbit/s, 64kbit/s",
        "type": "string",
        "pattern": concat!(r"^\s*", number!(), r"[kMG]?bit/s\s*$")
    });
    quantity!(Cpu, "Cpu", {
        "description": "A CPU quantity as Kubernetes writes it: 100m, 500m, 2",
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": concat!(r"^\s*", number!(), r"m?\s*$")}
        ]
    });
    quantity!(Memory, "Memory", {
        "description": "A memory quantity as Kubernetes writes it: 170Mi, 2Gi, 512Ki, 100M, 1G",
        "type": "string",
        "pattern": concat!(r"^\s*", number!(), r"\s*(Ki|Mi|Gi|k|M|G)\s*$")
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_people_write() {
        let s = |x| parse_duration(x).unwrap().as_nanos();
        assert_eq!(s("90s"), 90_000_000_000);
        assert_eq!(s("10m"), 600_000_000_000);
        assert_eq!(s("1h30m"), 5_400_000_000_000);
        assert_eq!(s("250ms"), 250_000_000);
        assert_eq!(s("1.5s"), 1_500_000_000);
        assert_eq!(s("0"), 0);
        assert!(parse_duration("90").unwrap_err().contains("has no unit"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-5s").unwrap_err().contains("negative"));
    }

    #[test]
    fn rates_people_write() {
        assert_eq!(parse_rate("100/s").unwrap(), 100.0);
        assert_eq!(parse_rate("6000/min").unwrap(), 100.0);
        assert!(parse_rate("100").unwrap_err().contains("no unit"));
        assert!(parse_rate("-1/s").is_err());
    }

    #[test]
    fn sizes_and_bandwidths_people_write() {
        assert_eq!(parse_bytes("1460").unwrap(), 1460);
        assert_eq!(parse_bytes("300B").unwrap(), 300);
        assert_eq!(parse_bytes("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_bytes("64KiB").unwrap(), 65_536);
        assert!(parse_bytes("1.5B").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
        assert_eq!(parse_bandwidth("100Mbit/s").unwrap(), 1e8);
        assert_eq!(parse_bandwidth("10Gbit/s").unwrap(), 1e10);
        assert!(parse_bandwidth("100").unwrap_err().contains("unit"));
        assert!(parse_bandwidth("0Mbit/s").is_err());
    }

    #[test]
    fn kubernetes_quantities() {
        assert_eq!(parse_cpu("100m").unwrap(), 100);
        assert_eq!(parse_cpu("0.5").unwrap(), 500);
        assert_eq!(parse_cpu("2").unwrap(), 2000);
        assert!(parse_cpu("0").is_err());
        assert!(parse_cpu("0.1m").is_err());
        assert_eq!(parse_memory("170Mi").unwrap(), 170 << 20);
        assert_eq!(parse_memory("2Gi").unwrap(), 2 << 30);
        assert_eq!(parse_memory("100M").unwrap(), 100_000_000);
        assert!(parse_memory("170").unwrap_err().contains("no unit"));
    }
}
