//! Struct-level validation: `Checked<T>` reads `T::Raw` from a mapping and
//! converts/validates it inside the visitor (error positioned at the mapping).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::errors::invalid;

pub(super) trait FromRaw: Sized {
    type Raw: DeserializeOwned;
    fn from_raw(raw: Self::Raw) -> Result<Self, (String, String)>;
}

pub(super) struct Checked<T>(pub(super) T);

impl<'de, T: FromRaw> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: FromRaw> Visitor<'de> for V<T> {
            type Value = Checked<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Checked<T>, A::Error> {
                let raw = T::Raw::deserialize(de::value::MapAccessDeserializer::new(map))?;
                T::from_raw(raw)
                    .map(Checked)
                    .map_err(|(m, h)| invalid(m, h))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

pub(super) fn unchecked<T>(v: Option<Vec<Checked<T>>>) -> Vec<T> {
    v.unwrap_or_default().into_iter().map(|c| c.0).collect()
}
