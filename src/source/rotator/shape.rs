//! New values for a rotation, of the same shape as the old ones: a field whose
//! name says it is a credential gets a fresh random value of the same length
//! and character classes (hex stays hex, digits stay digits, separators stay
//! where they are); other fields (a username, a host, a port) keep theirs;
//! `--set FIELD=VALUE` (or `FIELD=@FILE`) gives explicit values.
//!
//! Old and new values travel as JSON here, because that is how Vault KV and
//! AWS key/value secrets store them; every string of a parsed value is wiped
//! ([`wipe`]) before it is dropped, and serialized bodies go into
//! [`SecretBytes`].

use rand::Rng;
use serde_json::{Map, Value};
use zeroize::Zeroize;

use crate::secret::SecretBytes;

/// Length of a value generated for an empty old value.
const FRESH_LEN: usize = 32;
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Words in a field name that mark a credential.
const SECRET_WORDS: [&str; 9] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "key",
    "credential",
    "passphrase",
    "private",
];

/// `--set FIELD=VALUE`, parsed: the value read from a file for `@FILE`.
pub struct Set {
    /// The field.
    pub field: String,
    /// Its new value.
    pub value: SecretBytes,
}

impl std::fmt::Debug for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Set({} = [redacted])", self.field)
    }
}

/// Parses one `--set` argument; `@FILE` reads the value from FILE (one
/// trailing newline dropped), so that it need not be on the command line.
pub fn parse_set(arg: &str) -> Result<Set, String> {
    let Some((field, value)) = arg.split_once('=') else {
        return Err("--set takes FIELD=VALUE or FIELD=@FILE".into());
    };
    if field.is_empty() {
        return Err("--set: the field name is empty".into());
    }
    let value = match value.strip_prefix('@') {
        Some(path) => {
            let mut bytes =
                std::fs::read(path).map_err(|e| format!("--set {field}=@{path}: {e}"))?;
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            }
            SecretBytes::new(bytes)
        }
        None => SecretBytes::copy_from(value),
    };
    Ok(Set {
        field: field.to_owned(),
        value,
    })
}

/// Whether a field's name says it holds a credential.
pub fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// The new value of a secret that is one value (a plain-text AWS secret, a
/// parameter), whose one field is `value`: `--set value=…`, else one like
/// `old`; the message of a `--set` that does not fit.
pub fn one_value(old: &str, sets: &[Set]) -> Result<SecretBytes, String> {
    let field = crate::source::VALUE_FIELD;
    let mut fresh = match sets {
        [] => like(old),
        [s] if s.field == field => s
            .value
            .expose_str()
            .ok_or_else(|| format!("--set {field}: the value is not UTF-8 text"))?
            .to_owned(),
        _ => {
            return Err(format!(
                "the secret is one value: its one field is `{field}`"
            ))
        }
    };
    let bytes = SecretBytes::copy_from(&fresh);
    fresh.zeroize();
    Ok(bytes)
}

/// A random value of the same shape as `old`, never equal to it.
pub fn like(old: &str) -> String {
    for _ in 0..16 {
        let new = shaped(old);
        if new != old {
            return new;
        }
    }
    // A one-character digit can come out the same 16 times in a row only by
    // a freak of chance; a longer value then still differs.
    format!("{}{}", shaped(old), shaped("x"))
}

fn shaped(old: &str) -> String {
    let mut rng = rand::thread_rng();
    let mut pick = |set: &[u8]| char::from(set[rng.gen_range(0..set.len())]);
    if old.is_empty() {
        return (0..FRESH_LEN).map(|_| pick(ALNUM)).collect();
    }
    // Hex (at least 8 characters, some of them letters) stays hex.
    let hex = |letters: &'static [u8]| {
        old.len() >= 8
            && old
                .bytes()
                .all(|b| b.is_ascii_digit() || letters.contains(&b))
            && old.bytes().any(|b| letters.contains(&b))
    };
    if hex(b"abcdef") {
        return old.chars().map(|_| pick(b"0123456789abcdef")).collect();
    }
    if hex(b"ABCDEF") {
        return old.chars().map(|_| pick(b"0123456789ABCDEF")).collect();
    }
    old.chars()
        .map(|c| match c {
            'a'..='z' => pick(LOWER),
            'A'..='Z' => pick(UPPER),
            '0'..='9' => pick(DIGITS),
            c if c.is_ascii() => c,
            _ => pick(ALNUM),
        })
        .collect()
}

/// A rotated copy of a JSON object's fields: `sets` applied, and every other
/// credential-looking string field (or, when none looks like one, every
/// string field) regenerated. Returns the new object and the names of the
/// fields that changed. A `--set` field the secret lacks is an error.
pub fn rotate_fields(
    old: &Map<String, Value>,
    sets: &[Set],
) -> Result<(Map<String, Value>, Vec<String>), String> {
    for s in sets {
        if !old.contains_key(&s.field) {
            let known: Vec<&str> = old.keys().map(String::as_str).collect();
            return Err(format!(
                "--set {}: the secret has no such field (it has: {})",
                s.field,
                known.join(", ")
            ));
        }
    }
    let any_secret = old.keys().any(|k| looks_secret(k));
    let mut new = old.clone();
    let mut changed = Vec::new();
    for (name, value) in new.iter_mut() {
        if let Some(s) = sets.iter().find(|s| s.field == *name) {
            let text = s
                .value
                .expose_str()
                .ok_or_else(|| format!("--set {name}: the value is not UTF-8 text"))?;
            wipe(value);
            *value = Value::String(text.to_owned());
            changed.push(name.clone());
        } else if let Value::String(text) = value {
            if looks_secret(name) || !any_secret {
                let fresh = like(text);
                text.zeroize();
                *text = fresh;
                changed.push(name.clone());
            }
        }
    }
    Ok((new, changed))
}

/// Whether one of the changed `fields` got a value the drill made up (no
/// `--set` gave it): nothing else knows such a value, so it is put back.
pub fn invented(fields: &[String], sets: &[Set]) -> bool {
    fields.iter().any(|f| !sets.iter().any(|s| s.field == *f))
}

/// Serializes `value` into zeroizing bytes.
pub fn to_bytes(value: &Value) -> SecretBytes {
    let mut out = SecretBytes::default();
    // Writing JSON into memory cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out
}

/// Overwrites every string inside `value` (before it is dropped).
pub fn wipe(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credential_names_are_recognised() {
        for name in [
            "password",
            "DB_PASSWORD",
            "api_key",
            "token",
            "client_secret",
            "pwd",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["username", "host", "port", "database", "url"] {
            assert!(!looks_secret(name), "{name}");
        }
    }

    #[test]
    fn new_values_keep_the_shape() {
        for old in [
            "hunter2Hunter",
            "0123456789abcdef0123",
            "ABCDEF0123456789",
            "12345678",
            "sk-live_ab12",
            "pässwort",
            "",
        ] {
            let new = like(old);
            assert_ne!(new, old);
            if old.is_empty() {
                assert_eq!(new.len(), FRESH_LEN);
                continue;
            }
            assert_eq!(new.chars().count(), old.chars().count(), "{old} -> {new}");
            for (a, b) in old.chars().zip(new.chars()) {
                if a.is_ascii_digit() && old.len() < 16 {
                    assert!(b.is_ascii_digit(), "{old} -> {new}");
                }
                if a.is_ascii_punctuation() {
                    assert_eq!(a, b, "{old} -> {new}");
                }
            }
        }
        let hex = like("0123456789abcdef0123");
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{hex}"
        );
        assert_ne!(like("7"), "7");
    }

    #[test]
    fn only_credentials_change_unless_set() {
        let old = json!({ "username": "app", "password": "s3cretS3cret", "port": 5432 });
        let old = old.as_object().unwrap();
        let (new, changed) = rotate_fields(old, &[]).unwrap();
        assert_eq!(changed, vec!["password"]);
        assert_eq!(new["username"], "app");
        assert_eq!(new["port"], 5432);
        assert_ne!(new["password"], old["password"]);
        assert_eq!(new["password"].as_str().unwrap().len(), 12);
        let sets = vec![parse_set("username=app2").unwrap()];
        let (new, changed) = rotate_fields(old, &sets).unwrap();
        assert_eq!(changed, vec!["password", "username"]);
        assert_eq!(new["username"], "app2");
        // No field looks like a credential: every string changes.
        let plain = json!({ "value": "abc", "n": 1 });
        let (new, changed) = rotate_fields(plain.as_object().unwrap(), &[]).unwrap();
        assert_eq!(changed, vec!["value"]);
        assert_eq!(new["n"], 1);
    }

    #[test]
    fn bad_sets_name_the_field_not_the_value() {
        let old = json!({ "password": "x" });
        let sets = vec![parse_set("pasword=hunter2").unwrap()];
        let e = rotate_fields(old.as_object().unwrap(), &sets).unwrap_err();
        assert!(e.contains("pasword") && e.contains("password"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(parse_set("novalue").is_err());
        assert!(parse_set("=x").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v");
        std::fs::write(&p, "from-file\n").unwrap();
        let s = parse_set(&format!("password=@{}", p.display())).unwrap();
        assert_eq!(s.value.expose(), b"from-file");
        assert!(!format!("{s:?}").contains("from-file"));
        let e = parse_set("password=@/nonexistent/x").unwrap_err();
        assert!(e.contains("/nonexistent/x"), "{e}");
    }

    #[test]
    fn wipe_clears_every_string() {
        let mut v = json!({ "a": "secret", "b": ["x", { "c": "y" }], "n": 1 });
        wipe(&mut v);
        let shown = v.to_string();
        assert!(
            !shown.contains("secret") && !shown.contains("\"y\""),
            "{shown}"
        );
    }
}
