//! The hand-off state file (`output.state_dir/state.json`), read as the
//! sidecar reads it from any bytes. Beyond not panicking: a refusal quotes no
//! token or value from the file; a state that is read back is saved and read
//! again to the same state; each secret it holds is asked whether it is
//! usable against a leased read and a certificate without a panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use ramsecrets::config::Config;
use ramsecrets::fuzzing::{state, state_bytes, State};
use ramsecrets_fuzz::{assert_no_leak, json_keys, twin_json_values};

const CONFIG: &str = "sources:\n  - file: { path: /nonexistent/dev.yaml }\noutput: { dir: /run/fuzz }\nsecrets:\n  - name: db\n    read: database/creds/app\n  - name: tls\n    pki: { mount: pki, role: web, common_name: a.example }\n";

fn config() -> &'static Config {
    static CONFIG_: OnceLock<Config> = OnceLock::new();
    CONFIG_.get_or_init(|| Config::parse(CONFIG, Path::new("/")).expect("the target's config"))
}

/// The strings of a JSON document: what a refusal must not quote (the
/// tokens and values are base64 text in it, and decoded).
fn strings(v: &serde_json::Value, out: &mut Vec<Vec<u8>>) {
    match v {
        serde_json::Value::String(s) => {
            out.push(s.as_bytes().to_vec());
            if let Ok(d) = base64_decode(s) {
                out.push(d);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn base64_decode(s: &str) -> Result<Vec<u8>, ()> {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ABC.iter().position(|&x| x == c).ok_or(())? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

fn same(a: &State, b: &State) -> bool {
    a.tokens == b.tokens
        && a.secrets.len() == b.secrets.len()
        && a.secrets.iter().zip(&b.secrets).all(|((n, x), (m, y))| {
            n == m
                && x.address == y.address
                && x.fetched_at == y.fetched_at
                && x.fetched.fields == y.fetched.fields
                && x.fetched.version == y.fetched.version
                && x.fetched.lease == y.fetched.lease
                && x.fetched.expires == y.fetched.expires
                && x.fetched.stored == y.fetched.stored
        })
}

fuzz_target!(|data: &[u8]| {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    match state(data, now) {
        Err(message) => {
            let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
                return;
            };
            let mut values = Vec::new();
            strings(&json, &mut values);
            let mut names = Vec::new();
            json_keys(&json, &mut names);
            // Names of secrets and sources, and addresses, are not secret.
            let public: Vec<&str> = names.iter().map(String::as_str).collect();
            let twin_message = state(&twin_json_values(data), now)
                .err()
                .unwrap_or_default();
            assert_no_leak(
                "state",
                &message,
                &twin_message,
                values.iter().map(Vec::as_slice),
                &public,
            );
        }
        Ok(read) => {
            let saved = state_bytes(&read);
            let again = state(saved.expose(), now).expect("a saved state reads back");
            assert!(same(&read, &again), "the state changed on a save and read");
            for held in read.secrets.values() {
                for secret in &config().secrets {
                    let _ = held.usable(secret, now);
                    let _ = held.usable(secret, SystemTime::now());
                }
            }
        }
    }
});
