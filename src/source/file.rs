//! The `file` source, for local development: a YAML file whose keys are the
//! addresses secrets use (`secret/app/db` for kv, `database/creds/app` for
//! read, `pki/issue/web` for pki, `prod/api` for secret_id, `/app/key` for
//! parameter, `/app` for parameters_by_path), each mapping field names to
//! values. `!base64`-tagged values are decoded and written as bytes. The file
//! is re-read when it changes, so edits show up on the next fetch (the
//! sidecar watches it and fetches at once).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use futures::future::BoxFuture;
use tokio::time::Instant;

use schemars::{Schema, SchemaGenerator};

use super::backend::{described, reads, Backend, Names, Parse, SourceKind, Unread};
use super::{Address, Error, Result, Source};
use crate::config::{Mapping, Secret, Validator, Value, MAX_SIZE};
use crate::os::watch::Stamp;
use crate::secret::{Fetched, Fields, SecretBytes};

type Entries = Arc<HashMap<String, Fields>>;

/// A local YAML file of secrets.
pub struct FileSource {
    path: PathBuf,
    cache: Mutex<Option<(Stamp, Entries)>>,
}

impl FileSource {
    /// A source over the file at `path` (read at fetch time).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            cache: Mutex::new(None),
        }
    }

    fn entries(&self) -> Result<Entries> {
        let what = || format!("file source {}", self.path.display());
        let cant = |e: std::io::Error| Error::config(what()).because(e);
        let modified = std::fs::metadata(&self.path)
            .map(|m| Stamp::of(&m))
            .map_err(cant)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, entries)) = cache.as_ref() {
            if *at == modified {
                return Ok(entries.clone());
            }
        }
        // Never more than the cap (and one byte to tell it was over) is read.
        let mut text = zeroize::Zeroizing::new(String::new());
        std::fs::File::open(&self.path)
            .and_then(|f| f.take(MAX_SIZE + 1).read_to_string(&mut text))
            .map_err(cant)?;
        if text.len() as u64 > MAX_SIZE {
            return Err(Error::config(format!(
                "{}: larger than {} KiB; a secrets file needs far less",
                what(),
                MAX_SIZE / 1024
            )));
        }
        // The parser's own error may quote the file; `parse` says where instead.
        let entries =
            Arc::new(parse(&text).map_err(|e| Error::config(format!("{}: {e}", what())))?);
        *cache = Some((modified, entries.clone()));
        Ok(entries)
    }
}

impl Source for FileSource {
    fn fetch<'a>(
        &'a self,
        secret: &'a Secret,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Fetched>> {
        Box::pin(async move {
            let key = secret.address.key();
            let entries = self.entries()?;
            let fields = entries.get(&key).ok_or_else(|| {
                Error::not_found(format!("`{key}` is not a key of {}", self.path.display()))
            })?;
            Ok(Fetched::fields(fields.clone()))
        })
    }
}

/// Parses `address: { field: value }`; messages name keys, never values.
fn parse(text: &str) -> std::result::Result<HashMap<String, Fields>, String> {
    crate::config::syntax::nesting(text)?;
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        format!("not valid YAML{at}: {}", crate::config::syntax::explain(&e))
    })?;
    let serde_yaml::Value::Mapping(top) = value else {
        return Err("not a YAML mapping of address to fields".into());
    };
    let mut out = HashMap::new();
    for (k, v) in top {
        let serde_yaml::Value::String(address) = k else {
            return Err("every address must be a string".into());
        };
        let serde_yaml::Value::Mapping(map) = v else {
            return Err(format!("`{address}` must map field names to values"));
        };
        let mut fields = Fields::new();
        for (fk, fv) in map {
            let serde_yaml::Value::String(name) = fk else {
                return Err(format!("`{address}`: field names must be strings"));
            };
            let value = value_bytes(fv).ok_or_else(|| {
                format!("`{address}.{name}`: not a string, number, bool or !base64")
            })?;
            fields.insert(name, value);
        }
        out.insert(address, fields);
    }
    Ok(out)
}

fn value_bytes(v: serde_yaml::Value) -> Option<SecretBytes> {
    Some(match v {
        serde_yaml::Value::String(s) => SecretBytes::from_string(s),
        serde_yaml::Value::Bool(b) => SecretBytes::copy_from(if b { "true" } else { "false" }),
        serde_yaml::Value::Number(n) => SecretBytes::from_string(n.to_string()),
        serde_yaml::Value::Null => SecretBytes::default(),
        serde_yaml::Value::Tagged(t) if t.tag == "base64" => {
            let serde_yaml::Value::String(b64) = t.value else {
                return None;
            };
            let clean: String = b64.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(clean)
                .ok()?;
            SecretBytes::new(bytes)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_numbers_and_binary() {
        let e =
            parse("secret/app/db:\n  user: app\n  port: 5432\n  blob: !base64 AJ+SlP8=\n").unwrap();
        let f = &e["secret/app/db"];
        assert_eq!(f["user"].expose(), b"app");
        assert_eq!(f["port"].expose(), b"5432");
        assert_eq!(f["blob"].expose(), &[0, 159, 146, 148, 255]);
    }

    #[test]
    fn deep_nesting_and_files_over_a_mebibyte_are_refused() {
        let e = parse(&format!("a:\n  x: {}", "[".repeat(100_000))).unwrap_err();
        assert!(e.contains("more than 64") && e.contains("line 2"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        let big = format!("a:\n  x: \"{}\"\n", "y".repeat(MAX_SIZE as usize));
        std::fs::write(&path, big).unwrap();
        let e = FileSource::new(&path).entries().unwrap_err().to_string();
        assert!(
            e.contains("larger than 1024 KiB") && e.contains("big.yaml"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_keys_not_values() {
        let err = parse("a:\n  x: [hunter2]\n").unwrap_err();
        assert!(err.contains("`a.x`") && !err.contains("hunter2"), "{err}");
        let err = parse("- hunter2\n").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}

/// The `file` source.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFileSource {
    /// YAML file of `address: { field: value }`; relative to the config file.
    pub path: PathBuf,
}

/// The `file` source in the registry: it has no secret keys of its own and
/// reads every backend's.
pub(crate) struct FileBackend;

/// The `file` source in the registry.
pub(crate) static BACKEND: Backend = Backend {
    names: Names {
        key: "file",
        default_name: "file",
        describe: "a file",
        address_keys: &[],
        options: &[],
    },
    parse: &FileBackend,
};

impl Parse for FileBackend {
    fn settings_schema(&self, g: &mut SchemaGenerator) -> Schema {
        described::<RawFileSource>(
            g,
            "A local YAML file standing in for any backend (development).",
        )
    }
    fn read_settings(&self, value: &Value) -> Result<(), Unread> {
        reads::<RawFileSource>(value.clone())
    }
    fn settings(&self, v: &mut Validator<'_>, at: &str, value: Value) -> Option<SourceKind> {
        let raw = v.read::<RawFileSource>(at, value)?;
        Some(SourceKind::File {
            path: v.path(&format!("{at}.path"), raw.path),
        })
    }
    fn read_keys(&self, _: &Mapping) -> Result<(), Unread> {
        Ok(())
    }
    fn keys_schema(&self, _: &mut SchemaGenerator) -> Schema {
        Schema::default()
    }
    fn address(&self, _: &mut Validator<'_>, _: &str, _: Mapping) -> Option<Address> {
        None
    }
}
