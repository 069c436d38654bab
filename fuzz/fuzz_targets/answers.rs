//! Backend answers into fields: a Vault answer of any status and body (with
//! a `Retry-After`) read as a KV v1, KV v2, logical (with and without its
//! data kept) or PKI read, and an AWS GetSecretValue's SecretString or
//! SecretBinary. Beyond not panicking: an error quotes no value of the
//! answer's `data` (Vault's own `errors` of a refusal may be quoted); every
//! string field is its value unchanged; a lease or expiry lies within ten
//! years; an AWS value is kept as stored.
//!
//! Input: a first byte (which read, and Vault or AWS), the status as two
//! bytes, a `Retry-After` line, then the body, so seeds are written by hand.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use ramsecrets::fuzzing::{aws_answer, vault_answer, Fetched, VaultRead};
use ramsecrets_fuzz::{assert_no_leak, json_keys, twin_json_values};

const TEN_YEARS: Duration = Duration::from_secs(10 * 366 * 86_400);

/// The strings under `data` of a Vault answer: what an error must not quote.
fn values(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| values(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| values(x, out)),
        other => out.push(other.to_string()),
    }
}

fn bounded(f: &Fetched) {
    let limit = SystemTime::now() + TEN_YEARS + Duration::from_secs(86_400);
    if let Some(lease) = &f.lease {
        assert!(
            lease.duration <= TEN_YEARS + Duration::from_secs(86_400),
            "lease of {:?}",
            lease.duration
        );
    }
    for t in [f.expires, f.rotates].into_iter().flatten() {
        assert!(t <= limit, "a time beyond ten years: {t:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let [kind, hi, lo, rest @ ..] = data else {
        return;
    };
    let mut parts = rest.splitn(2, |&b| b == b'\n');
    let retry = parts.next().and_then(|r| std::str::from_utf8(r).ok());
    let body = parts.next().unwrap_or_default();
    if kind % 6 == 5 {
        // AWS: the body is the SecretString when it is UTF-8, else the SecretBinary.
        let (string, binary) = match std::str::from_utf8(body) {
            Ok(s) if hi % 2 == 0 => (Some(s.to_owned()), None),
            _ => (None, Some(body.to_vec())),
        };
        let stored = string
            .as_ref()
            .map(|s| s.as_bytes().to_vec())
            .or(binary.clone());
        match aws_answer(string, binary, Some("v1".into())) {
            Ok(f) => {
                assert_eq!(f.stored.as_ref().map(|s| s.expose().to_vec()), stored);
                // No field only from an empty JSON object.
                if f.fields.is_empty() {
                    let empty = serde_json::from_slice::<serde_json::Value>(body)
                        .is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()));
                    assert!(empty, "no field from a value that is not {{}}");
                }
            }
            Err(message) => assert_no_leak("aws", &message, "", [body], &[]),
        }
        return;
    }
    let read = match kind % 6 {
        0 => VaultRead::Kv1,
        1 => VaultRead::Kv2,
        2 => VaultRead::Read { keep: false },
        3 => VaultRead::Read { keep: true },
        _ => VaultRead::Pki,
    };
    let status = u16::from_be_bytes([*hi, *lo]);
    let answer = vault_answer(read, status, body, retry);
    let json = serde_json::from_slice::<serde_json::Value>(body).ok();
    match answer {
        Ok(f) => {
            bounded(&f);
            let data = json.as_ref().and_then(|j| match read {
                VaultRead::Kv2 => j.pointer("/data/data"),
                _ => j.get("data"),
            });
            if let (Some(serde_json::Value::Object(data)), false) =
                (data, matches!(read, VaultRead::Pki))
            {
                for (k, v) in data {
                    if let (Some(s), Some(field)) = (v.as_str(), f.fields.get(k)) {
                        assert_eq!(field.expose(), s.as_bytes(), "field {k} changed");
                    }
                }
            }
        }
        Err(message) if (200..300).contains(&status) => {
            let Some(json) = json else { return };
            let Some(data) = json.get("data") else { return };
            let mut secret = Vec::new();
            values(data, &mut secret);
            let mut names = Vec::new();
            json_keys(&json, &mut names);
            let public: Vec<&str> = names.iter().map(String::as_str).collect();
            let twin_body = twin_json_values(body);
            let twin_message = vault_answer(read, status, &twin_body, retry)
                .err()
                .unwrap_or_default();
            assert_no_leak(
                "vault",
                &message,
                &twin_message,
                secret.iter().map(String::as_bytes),
                &public,
            );
        }
        Err(_) => {}
    }
});
