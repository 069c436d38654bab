//! The building blocks of the raw config types ([`super::raw`] and the
//! sections' own): a duration's and a file mode's text, whose types carry
//! their schema pattern; a choice of exactly one key, declared once with
//! `one_of!` for the schema and the validator; and a list entry that did or
//! did not deserialize.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::{Mapping, Value};

/// A mapping that takes exactly one of some of its keys, each an `Option`
/// field. `one_of!` lists the keys once: the schema's `oneOf` ([`one_of_schema`],
/// the type's `#[schemars(transform)]`) and the validator's check read them.
pub trait OneOf {
    /// The keys, in the order of the fields.
    const KEYS: &'static [&'static str];
    /// Whether each key is given, in the order of [`Self::KEYS`].
    fn given(&self) -> Vec<bool>;
}

/// Declares that the type takes exactly one of the named `Option` fields.
macro_rules! one_of {
    ($ty:ty: $($key:ident),+) => {
        impl OneOf for $ty {
            const KEYS: &'static [&'static str] = &[$(stringify!($key)),+];
            fn given(&self) -> Vec<bool> {
                vec![$(self.$key.is_some()),+]
            }
        }
    };
}

pub(crate) use one_of;

/// The schema of a [`OneOf`] type: `oneOf` a `required` of each key.
pub fn one_of_schema<T: OneOf>(schema: &mut Schema) {
    let choices = T::KEYS
        .iter()
        .map(|k| serde_json::json!({ "required": [k] }))
        .collect();
    schema.insert("oneOf".to_owned(), serde_json::Value::Array(choices));
}

/// The schema of a mapping whose backend keys are flattened in: no key
/// but those its properties name (the flattening makes it
/// `unevaluatedProperties`, which editors support less).
pub fn closed(schema: &mut Schema) {
    if let Some(v) = schema.remove("unevaluatedProperties") {
        schema.insert("additionalProperties".to_owned(), v);
    }
}

/// A duration as written, e.g. `30s` or `1h30m` ([`super::duration::parse`]).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(inline)]
pub struct DurationText(#[schemars(regex(pattern = super::duration::PATTERN))] String);

/// A file mode as written: an octal string from "000" to "0777".
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(inline)]
pub struct ModeText(#[schemars(regex(pattern = r"^0?[0-7]{3}$"))] String);

impl std::ops::Deref for DurationText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for ModeText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// One entry of a list in the file: what it deserialized to, or why it did
/// not, so that a bad entry is a problem at its index and the entries after
/// it are still checked. Its schema is the entry's.
#[derive(Debug)]
pub enum Item<T> {
    /// The entry as written.
    Ok(T),
    /// It did not deserialize.
    Bad {
        /// The key path inside the entry (`.` for the entry itself).
        path: String,
        /// Serde's message.
        message: String,
        /// The entry's `name`, when it has one, so that a duplicate is
        /// reported beside the entry's other problems.
        name: Option<String>,
    },
}

/// A list entry's type. Some entries have keys that the backends declare
/// (`crate::source::backend`): those are taken out before serde reads the
/// rest, and handed to the entry as written, for the backend to read.
pub trait Entry: DeserializeOwned {
    /// Whether `key` is one the backends declare.
    fn takes(_key: &str) -> bool {
        false
    }
    /// Whether the backends' keys the entry gives read as their types:
    /// serde's path inside the entry and message, if not.
    fn read(_keys: &Mapping) -> Result<(), (String, String)> {
        Ok(())
    }
    /// Keeps the backends' keys the entry gives.
    fn keep(&mut self, _keys: Mapping) {}
}

impl<'de, T: Entry> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(d)?;
        let name = value
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_owned);
        let mut taken = Mapping::new();
        if let Value::Object(map) = &mut value {
            let keys: Vec<_> = map.keys().filter(|k| T::takes(k)).cloned().collect();
            for k in keys {
                if let Some(v) = map.remove(&k) {
                    taken.insert(k, v);
                }
            }
        }
        Ok(match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(mut t) => match T::read(&taken) {
                Ok(()) => {
                    t.keep(taken);
                    Item::Ok(t)
                }
                Err((path, message)) => Item::Bad {
                    path,
                    message,
                    name,
                },
            },
            Err(e) => Item::Bad {
                path: e.path().to_string(),
                message: e.into_inner().to_string(),
                name,
            },
        })
    }
}

impl<T: JsonSchema> JsonSchema for Item<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}
