//! Every output format (`raw`, `raw` with `key`, `json`, `yaml`, `dotenv`,
//! `env`, an AWS value as stored with its `AWSPREVIOUS`, the PKI files) over
//! any fields. Beyond not panicking: what is written reads back as exactly
//! the fields (`json` and `yaml` by their parsers, `env` through `sh`'s
//! grammar, `dotenv` through python-dotenv's), and an error quotes no value.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use ramsecrets::config::Config;
use ramsecrets::fuzzing::{render, Fetched, Fields, SecretBytes};
use ramsecrets_fuzz::{assert_no_leak, dotenv, sh_exports, twin};

const CONFIG: &str = r#"
sources:
  - { name: dev, file: { path: /nonexistent/dev.yaml } }
  - { name: aws, aws_secrets_manager: { region: eu-west-1 } }
output: { dir: /run/fuzz }
secrets:
  - { name: raw, source: dev, kv: { mount: secret, path: raw }, format: raw }
  - { name: key, source: dev, kv: { mount: secret, path: key }, key: password }
  - { name: json, source: dev, kv: { mount: secret, path: json }, format: json }
  - { name: yaml, source: dev, kv: { mount: secret, path: yaml }, format: yaml }
  - { name: dotenv, source: dev, kv: { mount: secret, path: dotenv }, format: dotenv }
  - { name: env, source: dev, kv: { mount: secret, path: env }, format: env }
  - { name: aws, source: aws, secret_id: prod/api, previous: true }
  - { name: pki, source: dev, pki: { mount: pki, role: web, common_name: a.example } }
"#;

fn config() -> &'static Config {
    static CONFIG_: OnceLock<Config> = OnceLock::new();
    CONFIG_.get_or_init(|| Config::parse(CONFIG, Path::new("/")).expect("the target's config"))
}

#[derive(Arbitrary, Debug)]
struct Input {
    secret: u8,
    fields: Vec<(String, Vec<u8>)>,
    stored: Option<Vec<u8>>,
    previous: Option<Vec<u8>>,
}

fn fields(pairs: &[(String, Vec<u8>)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), SecretBytes::new(v.clone())))
        .collect()
}

fn texts(f: &Fields) -> BTreeMap<String, String> {
    f.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.expose_str().expect("a text format wrote it").to_owned(),
            )
        })
        .collect()
}

/// What `input` fetched for `secret`, each value passed through `map`.
fn fetched(input: &Input, aws: bool, map: fn(&[u8]) -> Vec<u8>) -> Fetched {
    let pairs: Vec<_> = input
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), map(v)))
        .collect();
    let mut fetched = Fetched::fields(fields(&pairs));
    if aws {
        fetched.stored = input.stored.as_deref().map(|s| SecretBytes::new(map(s)));
        fetched.previous = input.previous.as_deref().map(|p| {
            let mut old = Fetched::fields(Fields::new());
            old.stored = Some(SecretBytes::new(map(p)));
            Box::new(old)
        });
    }
    fetched
}

fn fetched_twin(input: &Input, aws: bool) -> Fetched {
    fetched(input, aws, twin)
}

fuzz_target!(|input: Input| {
    let config = config();
    let secret = &config.secrets[usize::from(input.secret) % config.secrets.len()];
    let aws = secret.name == "aws";
    let fetched = fetched(&input, aws, <[u8]>::to_vec);
    let names: Vec<&str> = input.fields.iter().map(|(k, _)| k.as_str()).collect();
    let values = input
        .fields
        .iter()
        .map(|(_, v)| v.as_slice())
        .chain(input.stored.as_deref())
        .chain(input.previous.as_deref());
    let files = match render(secret, &fetched) {
        Ok(files) => files,
        Err(message) => {
            let twin = render(secret, &fetched_twin(&input, aws))
                .err()
                .unwrap_or_default();
            return assert_no_leak(&secret.name, &message, &twin, values, &names);
        }
    };
    let f = &fetched.fields;
    let one = |i: usize| files[i].bytes.expose();
    match secret.name.as_str() {
        "raw" => assert_eq!(one(0), f.values().next().expect("one field").expose()),
        "key" => assert_eq!(one(0), f.get("password").expect("password").expose()),
        "json" => {
            let back: BTreeMap<String, String> =
                serde_json::from_slice(one(0)).expect("json reads back");
            assert_eq!(back, texts(f));
        }
        "yaml" => {
            let back: BTreeMap<String, String> =
                serde_saphyr::from_slice(one(0)).expect("yaml reads back");
            assert_eq!(back, texts(f));
        }
        "dotenv" => {
            let text = std::str::from_utf8(one(0)).expect("dotenv is text");
            let back = dotenv(text).unwrap_or_else(|e| panic!("dotenv misread: {e}: {text:?}"));
            assert_eq!(back, texts(f), "dotenv read back otherwise: {text:?}");
        }
        "env" => {
            let back = sh_exports(one(0)).unwrap_or_else(|e| {
                panic!("env misread: {e}: {:?}", String::from_utf8_lossy(one(0)))
            });
            let want: BTreeMap<String, Vec<u8>> = f
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_vec()))
                .collect();
            assert_eq!(back, want);
        }
        "aws" => {
            let want = match &fetched.stored {
                Some(s) => s.expose(),
                None => f.values().next().expect("one field").expose(),
            };
            assert_eq!(one(0), want);
            assert_eq!(files.len(), 1 + usize::from(fetched.previous.is_some()));
            if let Some(p) = &input.previous {
                assert_eq!(files[1].file, "aws.previous");
                assert_eq!(files[1].bytes.expose(), p.as_slice());
            }
        }
        "pki" => {
            let names: Vec<&str> = files.iter().map(|r| r.file.as_str()).collect();
            assert_eq!(names, ["pki.crt", "pki.key", "pki.ca.crt"]);
            assert_eq!(one(0), f.get("certificate").expect("certificate").expose());
            assert_eq!(one(1), f.get("private_key").expect("private_key").expose());
            assert_eq!(one(2), f.get("ca_chain").expect("ca_chain").expose());
        }
        other => unreachable!("secret {other}"),
    }
});
