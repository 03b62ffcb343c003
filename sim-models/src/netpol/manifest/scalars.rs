//! Scalars: each read and converted inside its visitor, so that a conversion
//! error carries the scalar's position.

use std::fmt;
use std::marker::PhantomData;
use std::net::Ipv4Addr;

use serde::de::{self, Visitor};
use serde::Deserializer;

use super::errors::invalid;
use crate::protocol::Protocol;

/// A scalar as YAML typed it.
pub(in crate::netpol) enum Scalar {
    Str(String),
    Int(i128),
    Other(String),
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
        Ok(i128::try_from(v).map_or_else(|_| Scalar::Other(format!("number {v}")), Scalar::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Other(format!("number {v}")))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other(format!("boolean {v}")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other("null".into()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other("null".into()))
    }
}

/// Reads a scalar and converts it inside the visitor, so that a conversion error
/// carries the scalar's position.
struct ConvertVisitor<T, F>(F, PhantomData<T>);

impl<'de, T, F> Visitor<'de> for ConvertVisitor<T, F>
where
    F: FnOnce(Scalar) -> Result<T, (String, String)>,
{
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        self.finish(Scalar::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
        self.finish(Scalar::Str(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.finish(ScalarVisitor.visit_i64(v)?)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.finish(ScalarVisitor.visit_u64(v)?)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<T, E> {
        self.finish(ScalarVisitor.visit_i128(v)?)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<T, E> {
        self.finish(ScalarVisitor.visit_u128(v)?)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        self.finish(ScalarVisitor.visit_f64(v)?)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        self.finish(ScalarVisitor.visit_bool(v)?)
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        self.finish(Scalar::Other("null".into()))
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        self.finish(Scalar::Other("null".into()))
    }
}

impl<T, F> ConvertVisitor<T, F>
where
    F: FnOnce(Scalar) -> Result<T, (String, String)>,
{
    fn finish<E: de::Error>(self, s: Scalar) -> Result<T, E> {
        (self.0)(s).map_err(|(m, h)| invalid(m, h))
    }
}

pub(in crate::netpol) fn convert<'de, D, T>(
    d: D,
    f: impl FnOnce(Scalar) -> Result<T, (String, String)>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    d.deserialize_any(ConvertVisitor(f, PhantomData))
}

pub(in crate::netpol) fn want_string(s: Scalar) -> Result<String, (String, String)> {
    match s {
        Scalar::Str(v) => Ok(v),
        Scalar::Int(v) => Err((
            format!("expected a string, found integer {v}"),
            format!("quote it: \"{v}\""),
        )),
        Scalar::Other(v) => Err((
            format!("expected a string, found {v}"),
            "quote the value".into(),
        )),
    }
}

pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    convert(d, want_string)
}

pub(super) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    convert(d, |s| match s {
        Scalar::Other(v) if v == "null" => Ok(None),
        s => want_string(s).map(Some),
    })
}

pub(in crate::netpol) fn want_int(
    s: Scalar,
    what: &str,
    hint: &str,
) -> Result<i128, (String, String)> {
    match s {
        Scalar::Int(v) => Ok(v),
        Scalar::Str(v) => Err((
            format!("expected {what} (an integer), found string \"{v}\""),
            hint.into(),
        )),
        Scalar::Other(v) => Err((
            format!("expected {what} (an integer), found {v}"),
            hint.into(),
        )),
    }
}

pub(super) fn ipv4_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Addr>, D::Error> {
    convert(d, |s| match s {
        Scalar::Other(v) if v == "null" => Ok(None),
        s => {
            let v = want_string(s)?;
            if v.is_empty() {
                return Ok(None);
            }
            v.parse::<Ipv4Addr>().map(Some).map_err(|_| {
                (
                    format!("`{v}` is not an IPv4 address"),
                    "knsim models IPv4 only; write a dotted quad such as 10.244.1.7".into(),
                )
            })
        }
    })
}

pub(in crate::netpol) fn protocol_field<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Protocol>, D::Error> {
    convert(d, |s| {
        let v = want_string(s)?;
        Protocol::parse(&v).map(Some).ok_or_else(|| {
            (
                format!("unsupported value \"{v}\": supported values: \"TCP\", \"UDP\", \"SCTP\""),
                if Protocol::parse(&v.to_uppercase()).is_some() {
                    format!("protocols are upper case: {}", v.to_uppercase())
                } else {
                    "NetworkPolicy ports are TCP, UDP or SCTP (ICMP cannot be selected)".into()
                },
            )
        })
    })
}
