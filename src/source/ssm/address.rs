//! What a Parameter Store secret reads, and how the config's keys become it:
//! `parameter: NAME` (one parameter, optionally pinned by `version: N` or
//! `label: L`) or `parameters_by_path: PATH` (every parameter under the path,
//! recursively). Problems come back as (key, message) pairs, which the config
//! reports under the secret.

use serde::{Deserialize, Serialize};

use super::config::RawKeys;
use crate::source::address::Form;

/// The longest parameter name Parameter Store accepts (an ARN may be longer).
const MAX_NAME: usize = 2048;

/// What a Parameter Store secret reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parameter {
    /// One parameter, its latest version unless pinned.
    Name {
        /// The name (`/app/db/password`, `token`) or ARN.
        name: String,
        /// A pinned version or label.
        selector: Option<Selector>,
    },
    /// Every parameter under a path, recursively, as fields keyed by the
    /// last segment of each name.
    Path(String),
}

/// What a Parameter Store secret reads, as the hand-off state stores it
/// (`{"parameter": {"path": "/app"}}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsmAddress {
    /// One parameter or a path.
    Parameter(Parameter),
}

impl Form for SsmAddress {
    fn kind(&self) -> &'static str {
        let SsmAddress::Parameter(p) = self;
        p.kind()
    }

    fn key(&self) -> String {
        let SsmAddress::Parameter(p) = self;
        p.key().to_owned()
    }

    fn summary(&self) -> String {
        let SsmAddress::Parameter(p) = self;
        p.describe().replace('`', "")
    }

    /// One parameter (not a path).
    fn one_stored_value(&self) -> bool {
        let SsmAddress::Parameter(p) = self;
        p.one_value()
    }
}

/// A pinned version of a parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// One version number.
    Version(u64),
    /// The version a label is attached to.
    Label(String),
}

impl Parameter {
    /// The config key that gives this address.
    pub fn kind(&self) -> &'static str {
        match self {
            Parameter::Name { .. } => "parameter",
            Parameter::Path(_) => "parameters_by_path",
        }
    }

    /// The name or path, as the `file` source keys it and logs name it.
    pub fn key(&self) -> &str {
        match self {
            Parameter::Name { name, .. } => name,
            Parameter::Path(path) => path,
        }
    }

    /// The name of one parameter read at its latest version (not pinned).
    pub fn latest(&self) -> Option<&str> {
        match self {
            Parameter::Name {
                name,
                selector: None,
            } => Some(name),
            _ => None,
        }
    }

    /// Whether the secret is one stored value (written as it is by default).
    pub fn one_value(&self) -> bool {
        matches!(self, Parameter::Name { .. })
    }

    /// The address from the config's keys, when `parameter` or
    /// `parameters_by_path` is given (the caller has checked it is only one).
    pub fn from_keys(k: &RawKeys) -> Result<Parameter, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let address = match (k.parameter.as_deref(), k.parameters_by_path.as_deref()) {
            (Some(name), _) => {
                if let Some(why) = bad_name(name) {
                    let hint = if name.contains(':') {
                        " (a version goes in `version`, a label in `label`)"
                    } else {
                        ""
                    };
                    problems.push(("parameter", format!("{why}{hint}")));
                }
                let selector = match (k.version, k.label.as_deref()) {
                    (Some(_), Some(_)) => {
                        problems.push((
                            "label",
                            "cannot be used with `version`: give one or the other".into(),
                        ));
                        None
                    }
                    (Some(0), None) => {
                        problems.push(("version", "versions start at 1".into()));
                        None
                    }
                    (Some(v), None) => Some(Selector::Version(v)),
                    (None, Some(l)) => {
                        if l.is_empty()
                            || l.len() > 100
                            || !l
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                        {
                            problems.push((
                                "label",
                                "must be 1 to 100 letters, digits, `.`, `_` or `-`".into(),
                            ));
                        }
                        Some(Selector::Label(l.to_owned()))
                    }
                    (None, None) => None,
                };
                Parameter::Name {
                    name: name.to_owned(),
                    selector,
                }
            }
            (None, Some(path)) => {
                if !path.starts_with('/') || bad_name(path).is_some() {
                    problems.push((
                        "parameters_by_path",
                        format!(
                            "`{}` is not a path: it starts with `/` and holds no spaces or `:`",
                            path.escape_debug()
                        ),
                    ));
                }
                for (key, given) in [
                    ("version", k.version.is_some()),
                    ("label", k.label.is_some()),
                ] {
                    if given {
                        problems.push((
                            key,
                            "pins one parameter: it cannot be used with `parameters_by_path`"
                                .into(),
                        ));
                    }
                }
                Parameter::Path(path.trim_end_matches('/').to_owned()).normalized()
            }
            (None, None) => {
                problems.push(("parameter", "missing".into()));
                return Err(problems);
            }
        };
        if problems.is_empty() {
            Ok(address)
        } else {
            Err(problems)
        }
    }

    /// `/` alone stays the root path.
    fn normalized(self) -> Self {
        match self {
            Parameter::Path(p) if p.is_empty() => Parameter::Path("/".into()),
            other => other,
        }
    }

    /// How GetParameters names it: `name`, `name:version` or `name:label`.
    pub fn selected(&self) -> String {
        match self {
            Parameter::Name {
                name,
                selector: None,
            } => name.clone(),
            Parameter::Name {
                name,
                selector: Some(Selector::Version(v)),
            } => format!("{name}:{v}"),
            Parameter::Name {
                name,
                selector: Some(Selector::Label(l)),
            } => format!("{name}:{l}"),
            Parameter::Path(path) => path.clone(),
        }
    }

    /// How messages name it: `` parameter `name` (version 3) ``.
    pub fn describe(&self) -> String {
        match self {
            Parameter::Name {
                name,
                selector: Some(Selector::Version(v)),
            } => format!("parameter `{name}` (version {v})"),
            Parameter::Name {
                name,
                selector: Some(Selector::Label(l)),
            } => format!("parameter `{name}` (label {l})"),
            other => format!("{} `{}`", other.kind(), other.key()),
        }
    }
}

/// Why `name` cannot be a parameter name or ARN, if it cannot.
pub(super) fn bad_name(name: &str) -> Option<String> {
    let arn = name.starts_with("arn:");
    let bad = name.is_empty()
        || (!arn && name.len() > MAX_NAME)
        || (!arn && name.contains(':'))
        || name.contains("//")
        || !name.bytes().all(|b| b.is_ascii_graphic());
    bad.then(|| {
        format!(
            "`{}` is not a parameter name: printable ASCII without spaces, `//` or `:`, or an ARN",
            name.escape_debug()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(parameter: Option<&str>, by_path: Option<&str>) -> RawKeys {
        RawKeys {
            parameter: parameter.map(str::to_owned),
            parameters_by_path: by_path.map(str::to_owned),
            ..RawKeys::default()
        }
    }

    #[test]
    fn names_versions_labels_and_paths() {
        let p = Parameter::from_keys(&RawKeys {
            version: Some(3),
            ..keys(Some("/app/db/password"), None)
        })
        .unwrap();
        assert_eq!(p.selected(), "/app/db/password:3");
        assert_eq!(p.describe(), "parameter `/app/db/password` (version 3)");
        let p = Parameter::from_keys(&RawKeys {
            label: Some("prod".into()),
            ..keys(Some("token"), None)
        })
        .unwrap();
        assert_eq!(p.selected(), "token:prod");
        let p = Parameter::from_keys(&keys(None, Some("/app/"))).unwrap();
        assert_eq!(p, Parameter::Path("/app".into()));
        assert_eq!(p.describe(), "parameters_by_path `/app`");
        assert!(!p.one_value());
        let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/shared/key";
        assert_eq!(
            Parameter::from_keys(&keys(Some(arn), None)).unwrap().key(),
            arn
        );
    }

    #[test]
    fn bad_keys_are_named() {
        let bad = |k: RawKeys| -> Vec<&'static str> {
            Parameter::from_keys(&k)
                .unwrap_err()
                .into_iter()
                .map(|(key, _)| key)
                .collect()
        };
        assert_eq!(bad(keys(Some("a:3"), None)), ["parameter"]);
        assert_eq!(bad(keys(Some(""), None)), ["parameter"]);
        assert_eq!(bad(keys(Some("a b"), None)), ["parameter"]);
        assert_eq!(bad(keys(None, Some("app"))), ["parameters_by_path"]);
        assert_eq!(
            bad(RawKeys {
                version: Some(1),
                label: Some("x".into()),
                ..keys(Some("a"), None)
            }),
            ["label"]
        );
        assert_eq!(
            bad(RawKeys {
                version: Some(0),
                ..keys(Some("a"), None)
            }),
            ["version"]
        );
        assert_eq!(
            bad(RawKeys {
                label: Some("no/slash".into()),
                ..keys(Some("a"), None)
            }),
            ["label"]
        );
        assert_eq!(
            bad(RawKeys {
                version: Some(2),
                ..keys(None, Some("/app"))
            }),
            ["version"]
        );
    }

    /// The keys as the config takes them: which source reads them, the
    /// default format, and the errors' key paths.
    #[test]
    fn the_config_takes_them_from_its_source() {
        use crate::config::{Address, Config, Format, SourceKind};
        let head = "sources:\n  - ssm_parameter_store: { region: eu-west-1 }\n  - name: v\n    vault: { address: http://127.0.0.1:8200, auth: { token_file: /t } }\n  - name: f\n    file: { path: dev.yaml }\noutput: { dir: /run/x }\nsecrets:\n";
        let parse = |secrets: &str| {
            Config::parse(&format!("{head}{secrets}"), std::path::Path::new("/cfg"))
        };
        let c = parse("  - { name: a, source: ssm, parameter: /app/a, version: 2 }\n  - { name: b, source: ssm, parameters_by_path: /app }\n  - { name: c, source: f, parameter: /app/a }\n").unwrap();
        assert!(matches!(
            c.sources[0].kind,
            SourceKind::SsmParameterStore(_)
        ));
        assert_eq!(c.sources[0].name, "ssm");
        let pinned = Parameter::Name {
            name: "/app/a".into(),
            selector: Some(Selector::Version(2)),
        };
        assert_eq!(
            c.secrets[0].address,
            Address::SsmParameterStore(SsmAddress::Parameter(pinned))
        );
        assert_eq!(c.secrets[0].format, Format::Raw);
        assert_eq!(c.secrets[1].format, Format::Json);
        assert_eq!(c.secrets[2].address.key(), "/app/a");
        for (secrets, key, message) in [
            (
                "  - { name: a, source: v, parameter: /app/a }\n",
                "secrets[0].parameter",
                "source `v` is Vault: use `kv`, `read` or `pki`",
            ),
            (
                "  - { name: a, source: ssm, secret_id: x }\n",
                "secrets[0].secret_id",
                "use `parameter` or `parameters_by_path`",
            ),
            (
                "  - { name: a, source: ssm, parameter: \"a:1\" }\n",
                "secrets[0].parameter",
                "a version goes in `version`",
            ),
            (
                "  - { name: a, source: v, read: a/b, version: 2 }\n",
                "secrets[0].version",
                "pins a `parameter`",
            ),
            (
                "  - { name: a, source: ssm, parameters_by_path: /app, label: x }\n",
                "secrets[0].label",
                "cannot be used with `parameters_by_path`",
            ),
        ] {
            let problems = parse(secrets).unwrap_err();
            assert!(
                problems
                    .iter()
                    .any(|p| p.path == key && p.message.contains(message)),
                "{secrets}: {problems:?}"
            );
        }
    }
}
