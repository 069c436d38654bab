//! Templates from any text over any fields: a secret's minijinja template
//! (`format: template`), a top-level template over two secrets
//! (`templates:`), and a Vault Agent template (`format: go-template`) over a
//! read's data. Beyond not panicking: an error quotes no value, and a Vault
//! Agent template the config check admits fails at run time only as a run
//! time failure, never as a syntax or support error.
//!
//! Input: a first byte (which kind), the template text up to a NUL, then
//! NUL-separated field names and values (the first secret's, then after an
//! empty name the second's), so that seeds are written by hand.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use ramsecrets::config::{Address, Format, Secret, Template, VaultAddress};
use ramsecrets::fuzzing::{
    agent_template_check, render, render_template, Fetched, Fields, SecretBytes,
};
use ramsecrets_fuzz::{assert_no_leak, twin};

/// Where the Vault Agent template's secret is read.
const READ: &str = "database/creds/app";

fn secret(name: &str, format: Format, template: Option<&str>) -> Secret {
    Secret {
        name: name.into(),
        source: 0,
        address: Address::Vault(VaultAddress::Read(READ.into())),
        file: name.into(),
        format,
        key: None,
        template: template.map(str::to_owned),
        mode: 0o400,
        refresh: None,
        on_change: Vec::new(),
        write: true,
        allow_exec_variables: false,
    }
}

fn fetched(pairs: &[(&str, &str)], map: fn(&[u8]) -> Vec<u8>) -> Fetched {
    let fields: Fields = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretBytes::new(map(v.as_bytes()))))
        .collect();
    // The read's data as Vault Agent templates see it: the fields as a JSON object.
    let data: BTreeMap<&str, String> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.expose()).into_owned()))
        .collect();
    let stored = serde_json::to_vec(&data).ok().map(SecretBytes::new);
    let mut f = Fetched::fields(fields);
    f.stored = stored;
    f
}

/// The error of rendering `text` of `kind` over `first` and `second`, each
/// value through `map`; `None` when it renders.
fn error(
    kind: u8,
    text: &str,
    first: &[(&str, &str)],
    second: &[(&str, &str)],
    map: fn(&[u8]) -> Vec<u8>,
) -> Option<String> {
    match kind % 3 {
        0 => render(
            &secret("app", Format::Template, Some(text)),
            &fetched(first, map),
        )
        .err(),
        1 => {
            let secrets = [
                secret("db", Format::Json, None),
                secret("api", Format::Json, None),
            ];
            let template = Template {
                file: "app.conf".into(),
                text: text.into(),
                mode: 0o400,
                on_change: Vec::new(),
                inputs: vec![0, 1],
                dynamic: true,
            };
            let fetched = [Some(fetched(first, map)), Some(fetched(second, map))];
            render_template(&template, &secrets, &fetched).err()
        }
        _ => render(
            &secret("app", Format::AgentTemplate, Some(text)),
            &fetched(first, map),
        )
        .err(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Ok(rest) = std::str::from_utf8(rest) else {
        return;
    };
    let mut parts = rest.split('\0');
    let text = parts.next().unwrap_or_default();
    let mut first = Vec::new();
    let mut second = Vec::new();
    let mut into_second = false;
    while let Some(name) = parts.next() {
        if name.is_empty() {
            into_second = true;
            continue;
        }
        let value = parts.next().unwrap_or_default();
        match into_second {
            false => first.push((name, value)),
            true => second.push((name, value)),
        }
    }
    let Some(message) = error(kind, text, &first, &second, <[u8]>::to_vec) else {
        return;
    };
    let twin_message = error(kind, text, &first, &second, twin).unwrap_or_default();
    let mut public: Vec<&str> = vec![text, "db", "api", "app", READ];
    public.extend(first.iter().chain(&second).map(|(k, _)| *k));
    let values = first.iter().chain(&second).map(|(_, v)| v.as_bytes());
    assert_no_leak("template", &message, &twin_message, values, &public);
    if kind % 3 == 2 && agent_template_check(text, READ).is_ok() {
        assert!(
            message.starts_with("template failed: "),
            "a Vault Agent template the check admits failed otherwise at run time: {message}"
        );
    }
});
