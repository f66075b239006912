//! Reading a raw struct out of the parsed TOML, with every error naming
//! its key.

use super::error::{ConfigError, key_error};
use serde::de::DeserializeOwned;

/// Deserializes `table` (found at `at`, e.g. `sensors[2]`; empty for the
/// whole file) into a raw struct; an error names the key it is about.
pub(super) fn deserialize<T: DeserializeOwned>(
    at: &str,
    table: toml::Table,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let key = match (at, path.as_str()) {
            ("", path) => path.to_string(),
            (at, ".") => at.to_string(),
            (at, path) => format!("{at}.{path}"),
        };
        // toml appends "in `section`" on a second line; the key already
        // says where.
        let message = e.into_inner().to_string();
        key_error(key, message.lines().next().unwrap_or_default())
    })
}

/// The field names of a raw struct, in declaration order, read from its
/// derived `Deserialize` (which hands them to `deserialize_struct`): the
/// keys a kind takes are declared once, by its struct.
pub(super) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The probe always ends in an error: only the fields were wanted.
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

/// A deserializer that records the fields a struct asks for and stops.
struct FieldProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldProbe<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
        enum identifier ignored_any
    }
}
