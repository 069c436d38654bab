//! Tests of the hand-off state: what is saved, read back and refused.

use super::*;
use crate::config::Config;
use std::os::unix::fs::PermissionsExt;

/// A config with a leased secret and a state dir beside the output dir.
fn setup() -> (tempfile::TempDir, Config, OutputDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let text = "sources:\n  - file: { path: x }\noutput: { dir: out, state_dir: state, allow_disk: true }\nsecrets:\n  - name: a\n    read: db/creds/app\n  - name: k\n    kv: { mount: secret, path: k }\n";
    let config = Config::parse(text, dir.path()).unwrap();
    let out = OutputDir::open(config.output.as_ref().unwrap()).unwrap();
    (dir, config, out)
}

fn held(lease_id: &str, address: &Address) -> Held {
    let mut fields = Fields::new();
    fields.insert("password".into(), SecretBytes::copy_from("hunter2"));
    let mut fetched = Fetched::fields(fields);
    fetched.lease = Some(Lease {
        id: lease_id.into(),
        duration: Duration::from_secs(60),
        renewable: true,
    });
    Held {
        address: address.clone(),
        fetched_at: UNIX_EPOCH + Duration::from_secs(unix(SystemTime::now())),
        fetched,
    }
}

#[test]
fn round_trips_with_values_encoded_and_adopts_only_matching_leases() {
    let (dir, config, out) = setup();
    let mut state = State::default();
    state
        .tokens
        .insert("vault".into(), SecretBytes::copy_from("s.token"));
    let address = config.secrets[0].address.clone();
    let mut leased = held("db/creds/app/abc", &address);
    leased.fetched.stored = Some(SecretBytes::copy_from(r#"{"password":"hunter2"}"#));
    state.secrets.insert("a".into(), leased);
    let kv = config.secrets[1].address.clone();
    state
        .secrets
        .insert("k".into(), held("db/creds/app/abc", &kv));
    state
        .save(
            &prepare(config.output.as_ref().unwrap(), &out)
                .unwrap()
                .unwrap(),
        )
        .unwrap();
    let on_disk = std::fs::read_to_string(dir.path().join("state/state.json")).unwrap();
    assert!(!on_disk.contains("hunter2") && !on_disk.contains("s.token"));
    let doc: serde_json::Value = serde_json::from_str(&on_disk).unwrap();
    assert_eq!(doc["version"], VERSION);
    assert_eq!(
        doc["secrets"]["a"]["address"],
        serde_json::json!({ "read": "db/creds/app" })
    );
    let meta = std::fs::metadata(dir.path().join("state")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let back = State::load(config.output.as_ref().unwrap(), &out);
    assert_eq!(back.tokens["vault"].expose(), b"s.token");
    let a = &back.secrets["a"];
    assert_eq!(a.fetched.fields["password"].expose(), b"hunter2");
    // A `go-template` renders a handed-over lease from the response's data.
    assert_eq!(
        a.fetched.stored.as_ref().unwrap().expose(),
        br#"{"password":"hunter2"}"#
    );
    let now = SystemTime::now();
    assert!(a.usable(&config.secrets[0], now));
    assert!(!a.usable(&config.secrets[0], now + Duration::from_secs(60)));
    // A static secret is never taken from the state.
    assert!(!back.secrets["k"].usable(&config.secrets[1], now));
    // Nor a lease of another path.
    assert!(!held("sys/other/abc", &address).usable(&config.secrets[0], now));
}

#[test]
fn out_of_range_numbers_and_bad_documents_are_refused_without_panic() {
    let (dir, config, out) = setup();
    let max = u64::MAX;
    for doc in [
        format!(
            r#"{{"version":2,"tokens":{{}},"secrets":{{"a":{{"address":{{"read":"x"}},"fetched_at":{max},"version":null,"lease":null,"expires":null,"fields":{{}}}}}}}}"#
        ),
        format!(
            r#"{{"version":2,"tokens":{{}},"secrets":{{"a":{{"address":{{"read":"x"}},"fetched_at":1,"version":null,"lease":{{"id":"db/creds/app/x","duration":{max},"renewable":true}},"expires":null,"fields":{{}}}}}}}}"#
        ),
        format!(
            r#"{{"version":2,"tokens":{{}},"secrets":{{"a":{{"address":{{"read":"x"}},"fetched_at":1,"version":null,"lease":null,"expires":{max},"fields":{{}}}}}}}}"#
        ),
        r#"{"version":2,"tokens":{"vault":"bm90IGEgdG9rZW4K"},"secrets":{}}"#.to_owned(),
        r#"{"tokens":{"vault":"hunter2-not-base64"#.to_owned(),
    ] {
        let err = read_doc(&dir, &config, &out, &doc).unwrap_err().to_string();
        assert!(!err.contains("hunter2") && !err.contains("bm90"), "{err}");
    }
}

/// Writes `doc` as the state file of `setup`'s config and reads it back.
fn read_doc(
    dir: &tempfile::TempDir,
    config: &Config,
    out: &OutputDir,
    doc: &str,
) -> Result<State, Error> {
    let state = dir.path().join("state");
    let _ = std::fs::create_dir(&state);
    std::fs::set_permissions(&state, PermissionsExt::from_mode(0o700)).unwrap();
    let path = state.join(FILE);
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, doc).unwrap();
    State::read(config.output.as_ref().unwrap(), &state, out)
}

#[test]
fn the_address_is_stored_as_data_and_matched_by_value() {
    let (_dir, config, _out) = setup();
    let address = config.secrets[0].address.clone();
    let kv = &config.secrets[1].address;
    assert_eq!(
        serde_json::to_value(kv).unwrap(),
        serde_json::json!({ "kv": { "mount": "secret", "path": "k", "kv_version": null, "version": null } })
    );
    let back: Address = serde_json::from_value(serde_json::to_value(kv).unwrap()).unwrap();
    assert_eq!(&back, kv);
    // Another address of the same shape is not adopted.
    let other: Address =
        serde_json::from_value(serde_json::json!({ "read": "db/creds/other" })).unwrap();
    let now = SystemTime::now();
    assert!(held("db/creds/app/abc", &address).usable(&config.secrets[0], now));
    assert!(!held("db/creds/app/abc", &other).usable(&config.secrets[0], now));
}

#[test]
fn a_state_of_another_or_no_version_is_refused_with_the_reason() {
    let (dir, config, out) = setup();
    let body = r#""tokens":{"vault":"cy50b2tlbg=="},"secrets":{}"#;
    for (doc, said) in [
        (format!("{{{body}}}"), "the state has no version"),
        (
            format!(r#"{{"version":1,{body}}}"#),
            "the state is version 1",
        ),
        (
            format!(r#"{{"version":99,{body}}}"#),
            "the state is version 99",
        ),
    ] {
        let err = read_doc(&dir, &config, &out, &doc).unwrap_err();
        assert!(matches!(err, Error::Version { .. }), "{err}");
        let err = err.to_string();
        assert!(
            err.contains(said) && err.contains("reads only version 2"),
            "{err}"
        );
        assert!(!err.contains("cy50b2tlbg"), "{err}");
    }
    let good = format!(r#"{{"version":2,{body}}}"#);
    let state = read_doc(&dir, &config, &out, &good).unwrap();
    assert_eq!(state.tokens["vault"].expose(), b"s.token");
}

#[test]
fn a_state_dir_inside_the_output_dir_is_refused_even_through_a_symlink() {
    let (dir, mut config, out) = setup();
    std::os::unix::fs::symlink(dir.path().join("out"), dir.path().join("link")).unwrap();
    config.output.as_mut().unwrap().state_dir = Some(dir.path().join("link/sub"));
    let err = prepare(config.output.as_ref().unwrap(), &out).unwrap_err();
    assert!(matches!(err, Error::InsideOutput { .. }), "{err}");
}
