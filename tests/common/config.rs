//! Configs for the tests, built as data and written as YAML: a test says
//! which sources, output, sections and secrets it wants with `json!` values
//! instead of escaping braces in a `format!` string, and paths go in as
//! paths (quoted by the YAML writer, never pasted into the text).

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// A ramsecrets config under construction; [`Config::yaml`] writes it out.
#[derive(Clone, Debug, Default)]
pub struct Config(Map<String, Value>);

impl Config {
    /// An empty config.
    pub fn new() -> Config {
        Config::default()
    }

    /// Adds a source (`{ "vault": … }`, `{ "file": … }`, …) to `sources:`.
    pub fn source(self, source: Value) -> Config {
        self.push("sources", source)
    }

    /// Adds a secret to `secrets:`.
    pub fn secret(self, secret: Value) -> Config {
        self.push("secrets", secret)
    }

    /// Adds a template to `templates:`.
    pub fn template(self, template: Value) -> Config {
        self.push("templates", template)
    }

    /// `output: { dir: <dir> }`.
    pub fn output(self, dir: &Path) -> Config {
        self.set("output", json!({ "dir": dir }))
    }

    /// Sets the top-level section `key` (`refresh`, `health`, `proxy`, …) to `value`.
    pub fn set(mut self, key: &str, value: Value) -> Config {
        self.0.insert(key.to_owned(), value);
        self
    }

    /// Adds the keys of `fields` to the top-level section `key` (creating it),
    /// e.g. a `state_dir` next to an `output.dir`.
    pub fn with(mut self, key: &str, fields: Value) -> Config {
        let Value::Object(fields) = fields else {
            panic!("`{key}` takes an object, not {fields}");
        };
        let section = self
            .0
            .entry(key)
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(section) = section else {
            panic!("`{key}` is not a section: {section}");
        };
        section.extend(fields);
        self
    }

    /// Adds the keys of `fields` to the secret called `name`.
    pub fn secret_with(mut self, name: &str, fields: Value) -> Config {
        let Value::Object(fields) = fields else {
            panic!("secret `{name}` takes an object, not {fields}");
        };
        let secret = self
            .0
            .get_mut("secrets")
            .and_then(Value::as_array_mut)
            .and_then(|all| all.iter_mut().find(|s| s["name"] == name))
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("no secret `{name}`"));
        secret.extend(fields);
        self
    }

    /// The config as YAML.
    pub fn yaml(&self) -> String {
        serde_saphyr::to_string(&self.0).unwrap()
    }

    /// Writes the config to `dir/name`; returns the path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        super::file(dir, name, &self.yaml())
    }

    fn push(mut self, key: &str, item: Value) -> Config {
        let list = self.0.entry(key).or_insert_with(|| json!([]));
        list.as_array_mut()
            .unwrap_or_else(|| panic!("`{key}` is not a list"))
            .push(item);
        self
    }
}

/// A Vault source at `address` that logs in with `auth` (`{ "token_file": … }`, …).
pub fn vault(address: &str, auth: Value) -> Value {
    json!({ "vault": { "address": address, "auth": auth } })
}

/// A `file` source reading `path` (relative to the config's directory).
pub fn file_source(path: impl AsRef<Path>) -> Value {
    json!({ "file": { "path": path.as_ref() } })
}

/// A KV secret `name` read from `mount`/`path`.
pub fn kv(name: &str, mount: &str, path: &str) -> Value {
    json!({ "name": name, "kv": { "mount": mount, "path": path } })
}

/// A KV secret `name` from `secret/<path>`, its field `key` written alone.
pub fn kv_key(name: &str, path: &str, key: &str) -> Value {
    json!({ "name": name, "kv": { "mount": "secret", "path": path }, "key": key })
}
