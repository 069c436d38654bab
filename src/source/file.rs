//! The `file` source, for local development: a YAML file whose keys are the
//! addresses secrets use (`secret/app/db` for kv, `database/creds/app` for
//! read, `pki/issue/web` for pki, `prod/api` for secret_id, `/app/key` for
//! parameter, `/app` for parameters_by_path), each mapping field names to
//! values (numbers and booleans as written). `!base64`-tagged values are
//! decoded and written as bytes. The file is re-read when it changes, so
//! edits show up on the next fetch (the sidecar watches it and fetches at
//! once).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures::future::BoxFuture;
use tokio::time::Instant;

use schemars::{Schema, SchemaGenerator};

use super::backend::{described, reads, Backend, Names, Parse, Settings, SourceKind, Unread};
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

/// A field as written: its text (a number or a bool as written, so `0123`
/// and `1.50` stay as they are), nothing (`~`), and its tag if any.
type Field = serde_saphyr::Tagged<Option<String>>;

/// Parses `address: { field: value }`; messages name lines and keys, never values.
fn parse(text: &str) -> std::result::Result<HashMap<String, Fields>, String> {
    let doc: HashMap<String, HashMap<String, Field>> =
        crate::config::yaml::read(text).map_err(|e| e.to_string())?;
    doc.into_iter()
        .map(|(address, fields)| {
            let fields = fields
                .into_iter()
                .map(|(name, serde_saphyr::Tagged(value, tag))| {
                    let bytes = value_bytes(value, tag.as_deref()).ok_or_else(|| {
                        format!("`{address}.{name}`: not text, a number, a bool or !base64")
                    })?;
                    Ok((name, bytes))
                })
                .collect::<std::result::Result<Fields, String>>()?;
            Ok((address, fields))
        })
        .collect()
}

/// The bytes of a field: its text, or what `!base64` text decodes to; the
/// YAML core tags (`!!str`, `!!int`, …) keep the text, other tags are refused.
fn value_bytes(value: Option<String>, tag: Option<&str>) -> Option<SecretBytes> {
    let text = SecretBytes::from_string(value.unwrap_or_default());
    match tag {
        None => Some(text),
        Some(core) if core.starts_with("tag:yaml.org,2002:") => Some(text),
        Some("!base64") => {
            let clean: zeroize::Zeroizing<Vec<u8>> = zeroize::Zeroizing::new(
                text.expose()
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect(),
            );
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&*clean)
                .ok()?;
            Some(SecretBytes::new(bytes))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_numbers_as_written_and_binary() {
        let e = parse(
            "secret/app/db:\n  user: app\n  port: 5432\n  pin: 0123\n  ratio: 1.50\n  on: yes\n  \
             none: ~\n  text: !!str 12\n  blob: !base64 AJ+S\n    lP8=\n",
        )
        .unwrap();
        let f = &e["secret/app/db"];
        assert_eq!(f["user"].expose(), b"app");
        assert_eq!(f["port"].expose(), b"5432");
        assert_eq!(f["pin"].expose(), b"0123");
        assert_eq!(f["ratio"].expose(), b"1.50");
        assert_eq!(f["on"].expose(), b"yes");
        assert_eq!(f["none"].expose(), b"");
        assert_eq!(f["text"].expose(), b"12");
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
    fn errors_name_lines_and_keys_not_values() {
        for (text, want) in [
            ("a:\n  x: [hunter2]\n", "line 2, column 6: not valid YAML"),
            (
                "a:\n  x: { y: hunter2 }\n",
                "line 2, column 6: not valid YAML",
            ),
            ("- hunter2\n", "line 1, column 1: not valid YAML"),
            ("a: hunter2\n", "line 1, column 4: not valid YAML"),
            (
                "a:\n  x: 1\n  x: hunter2\n",
                "line 3, column 3: not valid YAML: the key `x` is given twice",
            ),
            (
                "a:\n  x: \"hunter2\n",
                "line 2, column 6: not valid YAML: the quote opened here",
            ),
            ("a:\n  x: !base64 hunter2!\n", "`a.x`: not text"),
            ("a:\n  x: !vault hunter2\n", "`a.x`: not text"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                err.contains(want) && !err.contains("hunter2"),
                "{text:?}: {err}"
            );
        }
    }
}

/// The `file` source.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFileSource {
    /// YAML file of `address: { field: value }`; relative to the config file.
    pub path: PathBuf,
}

/// Settings of a `file` source.
#[derive(Debug, PartialEq, Eq)]
pub struct FileSettings {
    /// Absolute or relative to the working directory (resolved from the config's directory).
    pub path: PathBuf,
}

impl Settings for FileSettings {
    fn summary(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn request_budget(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn source(&self, _: &str) -> Result<Arc<dyn Source>> {
        Ok(Arc::new(FileSource::new(&self.path)))
    }

    fn local_file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn injectable(&self) -> std::result::Result<(), (&'static str, &'static str)> {
        Err(("file", "a file source cannot be injected into pods"))
    }
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
    proxy: None,
    pod: None,
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
        Some(SourceKind::File(FileSettings {
            path: v.path(&format!("{at}.path"), raw.path),
        }))
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
