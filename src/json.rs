//! Reading what the server wrote into the shared types, in the browser: the frames of the
//! socket, the boards and ops they carry, and a board page's island props. A leaf: the wire
//! types (`protocol`, `boards`, `ops`) all build on it, and it knows none of them.
//!
//! The text is parsed once into a [`Value`] (the payloads stay values anyway), and each type
//! takes its fields out of it by hand, moving strings and payloads rather than copying them.
//! serde's derived decoders, instantiated for every field type and inlined with the parser,
//! were a tenth of the board's compressed WASM; these are a fraction of that. The server
//! keeps serde for what it reads from files and requests, and encodes everything with serde,
//! so every type here is decoded from its own serde encoding in the tests. Adding a field to
//! one of these types does not compile until its decoder reads it.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

pub type Error = serde_json::Error;

/// A type the browser reads from a JSON value the server wrote.
pub trait FromJson: Sized {
    fn from_json(value: Value) -> Result<Self, Error>;

    /// What a field of this type that the server left out stands for, when it may: `None`
    /// for an option, nothing for a map the server skips when empty.
    fn absent() -> Option<Self> {
        None
    }
}

/// `FromJson` for a struct the server writes as an object of its fields, each under its own
/// name or the one given: `decode_fields!(ErrorFrame { code, message, reference: "ref" })`.
/// The struct is built with every field named, so a field added to it does not compile until
/// it is listed here.
macro_rules! decode_fields {
    ($type:ident { $($field:ident $(: $name:literal)?),* $(,)? }) => {
        impl $crate::json::FromJson for $type {
            fn from_json(
                value: serde_json::Value,
            ) -> Result<Self, $crate::json::Error> {
                let mut fields = $crate::json::Fields::of(value)?;
                Ok($type {$(
                    $field: fields.take(
                        $crate::json::decode_fields!(@name $field $($name)?),
                    )?,
                )*})
            }
        }
    };
    (@name $field:ident $name:literal) => { $name };
    (@name $field:ident) => { stringify!($field) };
}
pub(crate) use decode_fields;

/// serde's `Deserialize` for a type the browser reads with [`FromJson`] (a frame, the island's
/// props): through a JSON value, so there is one way such a type is read.
pub fn deserialize_via_json<'de, D: Deserializer<'de>, T: FromJson>(
    deserializer: D,
) -> Result<T, D::Error> {
    T::from_json(Value::deserialize(deserializer)?).map_err(D::Error::custom)
}

/// An object's fields, taken out one by one.
pub struct Fields(Map<String, Value>);

impl Fields {
    pub fn of(value: Value) -> Result<Self, Error> {
        match value {
            Value::Object(fields) => Ok(Fields(fields)),
            _ => Err(expected("an object")),
        }
    }

    /// The field `name`, which must be there unless its type has a meaning for absent.
    pub fn take<T: FromJson>(&mut self, name: &'static str) -> Result<T, Error> {
        match self.0.remove(name) {
            Some(value) => {
                T::from_json(value).map_err(|e| Error::custom(format_args!("`{name}`: {e}")))
            }
            None => T::absent().ok_or_else(|| Error::missing_field(name)),
        }
    }

    /// The fields not taken yet, for a type whose fields sit beside others' (a flattened one).
    pub fn rest(self) -> Value {
        Value::Object(self.0)
    }
}

fn expected(what: &str) -> Error {
    Error::custom(format_args!("expected {what}"))
}

/// Decodes a value as one of `T`'s unit variants by the name the server writes for it.
pub fn named<T: Copy>(value: Value, variants: &[(&str, T)]) -> Result<T, Error> {
    let Value::String(name) = value else {
        return Err(expected("a string"));
    };
    variants
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, variant)| *variant)
        .ok_or_else(|| Error::custom(format_args!("unknown variant `{name}`")))
}

impl FromJson for Value {
    fn from_json(value: Value) -> Result<Self, Error> {
        Ok(value)
    }
}

impl FromJson for String {
    fn from_json(value: Value) -> Result<Self, Error> {
        match value {
            Value::String(text) => Ok(text),
            _ => Err(expected("a string")),
        }
    }
}

impl FromJson for bool {
    fn from_json(value: Value) -> Result<Self, Error> {
        value.as_bool().ok_or_else(|| expected("a boolean"))
    }
}

impl FromJson for f64 {
    fn from_json(value: Value) -> Result<Self, Error> {
        value.as_f64().ok_or_else(|| expected("a number"))
    }
}

impl FromJson for u64 {
    fn from_json(value: Value) -> Result<Self, Error> {
        value.as_u64().ok_or_else(|| expected("a whole number"))
    }
}

/// The narrower whole numbers, through `u64`.
macro_rules! narrower {
    ($($t:ty),*) => {$(
        impl FromJson for $t {
            fn from_json(value: Value) -> Result<Self, Error> {
                <$t>::try_from(u64::from_json(value)?).map_err(|_| expected("a smaller number"))
            }
        }
    )*};
}
narrower!(u8, u16, u32, usize);

impl<T: FromJson> FromJson for Option<T> {
    fn from_json(value: Value) -> Result<Self, Error> {
        match value {
            Value::Null => Ok(None),
            value => T::from_json(value).map(Some),
        }
    }

    fn absent() -> Option<Self> {
        Some(None)
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(value: Value) -> Result<Self, Error> {
        let Value::Array(items) = value else {
            return Err(expected("an array"));
        };
        // A loop, not a `collect` into a `Result`: the same, in less WASM.
        let mut decoded = Vec::with_capacity(items.len());
        for item in items {
            decoded.push(T::from_json(item)?);
        }
        Ok(decoded)
    }

    /// A list the server skips when empty.
    fn absent() -> Option<Self> {
        Some(Vec::new())
    }
}

impl<T: FromJson> FromJson for BTreeMap<String, T> {
    /// Inserted one by one: `collect` sorts first, and each sort it instantiates is kilobytes
    /// of WASM (the fields come in key order anyway).
    fn from_json(value: Value) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        for (key, value) in Fields::of(value)?.0 {
            map.insert(key, T::from_json(value)?);
        }
        Ok(map)
    }

    fn absent() -> Option<Self> {
        Some(BTreeMap::new())
    }
}

impl<A: FromJson, B: FromJson> FromJson for (A, B) {
    fn from_json(value: Value) -> Result<Self, Error> {
        match value {
            Value::Array(items) if items.len() == 2 => {
                let mut items = items.into_iter();
                let (a, b) = (items.next(), items.next());
                Ok((
                    A::from_json(a.unwrap_or_default())?,
                    B::from_json(b.unwrap_or_default())?,
                ))
            }
            _ => Err(expected("a pair")),
        }
    }
}

/// As serde writes a duration: `{"secs": …, "nanos": …}`.
impl FromJson for Duration {
    fn from_json(value: Value) -> Result<Self, Error> {
        let mut fields = Fields::of(value)?;
        Ok(Duration::new(fields.take("secs")?, fields.take("nanos")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_fields_count_only_where_the_type_allows() {
        let mut fields = Fields::of(json!({"a": 1, "b": null})).unwrap();
        assert_eq!(fields.take::<Option<u64>>("b").unwrap(), None);
        assert_eq!(fields.take::<Option<u64>>("c").unwrap(), None);
        assert!(fields
            .take::<BTreeMap<String, u64>>("d")
            .unwrap()
            .is_empty());
        let missing = fields.take::<u64>("e").unwrap_err().to_string();
        assert_eq!(missing, "missing field `e`");
        assert_eq!(fields.take::<u8>("a").unwrap(), 1);
    }

    #[test]
    fn wrong_shapes_say_which_field() {
        let mut fields = Fields::of(json!({"n": "x", "big": 300, "pair": [1]})).unwrap();
        let wrong = fields.take::<u64>("n").unwrap_err().to_string();
        assert_eq!(wrong, "`n`: expected a whole number");
        assert!(fields.take::<u8>("big").is_err());
        assert!(fields.take::<(u8, u8)>("pair").is_err());
        assert!(Fields::of(json!([1])).is_err());
        assert_eq!(
            named(json!("b"), &[("a", 1), ("b", 2)]).unwrap(),
            2,
            "unit variants by name"
        );
        assert!(named(json!("c"), &[("a", 1)]).is_err());
    }

    #[test]
    fn durations_read_as_serde_writes_them() {
        let written = serde_json::to_value(Duration::from_millis(2500)).unwrap();
        assert_eq!(
            Duration::from_json(written).unwrap(),
            Duration::from_millis(2500)
        );
    }
}
