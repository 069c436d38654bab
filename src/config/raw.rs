//! The configuration file as written: [`RawConfig`], whose fields are the
//! top-level keys (listed nowhere else), each of the type its section's
//! module declares beside the section's validation. These serde types, with
//! `deny_unknown_fields` and strings where the user writes durations and
//! modes, are also the source of the published JSON Schema, and carry its
//! rules themselves with the `blocks`. Validation turns
//! them into [`super::Config`].

use schemars::JsonSchema;
use serde::Deserialize;

use super::blocks::Item;
use super::inject::RawInject;
use super::output::RawOutput;
use super::secrets::RawSecret;
use super::sidecar::{RawExec, RawHealth, RawProxy, RawRefresh};
use super::sources::RawSource;
use super::templates::RawTemplate;

/// A ramsecrets configuration file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ramsecrets configuration")]
pub struct RawConfig {
    /// Where secrets come from.
    pub sources: Vec<Item<RawSource>>,
    /// Where files are written; optional when `proxy` serves the secrets from memory only,
    /// and beside `inject:`.
    pub output: Option<RawOutput>,
    /// Lock all memory so secrets are never swapped out.
    #[serde(default)]
    pub mlock: bool,
    /// How often the sidecar refreshes.
    pub refresh: Option<RawRefresh>,
    /// Health and metrics endpoint of the sidecar.
    pub health: Option<RawHealth>,
    /// What `exec` mode does to its child when a secret changes.
    pub exec: Option<RawExec>,
    /// The local credential proxy (AWS Secrets Manager Agent and Vault KV APIs).
    pub proxy: Option<RawProxy>,
    /// The secrets to fetch and the files to write them to (not needed beside `inject:`).
    #[serde(default)]
    pub secrets: Vec<Item<RawSecret>>,
    /// Files rendered from several secrets.
    #[serde(default)]
    pub templates: Vec<Item<RawTemplate>>,
    /// The admission webhook, read by `ramsecrets inject` only (a file with
    /// `inject:` needs no `output:` or `secrets:`).
    pub inject: Option<RawInject>,
}

/// The field names of the struct `T` deserializes as, in declaration order,
/// as serde's derive lists them: the keys of a section are written once, in
/// its `Raw` type.
pub(super) fn fields<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{value::Error, Error as _, Visitor};
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(Error::custom("only its fields are read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod top_keys {
    use std::path::Path;

    use super::super::Config;

    #[test]
    fn an_unknown_top_level_key_lists_the_keys_of_raw_config_in_order() {
        let e = Config::parse(
            "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets: [ { name: a, read: a/b } ]\nsecret: 1\n",
            Path::new("/cfg"),
        )
        .unwrap_err();
        assert_eq!(e[0].path, "secret", "{e:?}");
        assert_eq!(
            e[0].message,
            "unknown key `secret`, expected one of sources, output, mlock, refresh, health, exec, proxy, secrets, templates, inject"
        );
    }
}
