//! Which configured secret a request names: the AWS agent's `secretId`, a
//! Vault path under `/v1/`, a Parameter Store name, or one of the calls Vault
//! clients make before a read. Only configured secrets are ever served.

use std::collections::HashMap;

use super::api::Shape;
use super::refusal::Api;
use crate::config::{Address, Config, KvVersion};

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `/ping`: liveness, no token needed.
    Ping,
    /// `/v1/sys/health`: Vault's health check, no token needed (as in Vault).
    Health,
    /// `/v1/sys/internal/ui/mounts/<path>` under a configured KV mount: the
    /// lookup `vault kv` and `bao kv` make first, to learn the KV version.
    Mount {
        /// The mount, without slashes.
        mount: String,
        /// Its KV version as the proxy serves it.
        version: KvVersion,
    },
    /// `/v1/auth/token/lookup-self`: what SDKs ask to learn whether their
    /// token works (hvac's `is_authenticated()`).
    LookupSelf,
    /// A secret in the AWS agent's shape.
    Aws {
        /// Index into `config.secrets`.
        secret: usize,
        /// `versionStage`.
        stage: Option<String>,
        /// `versionId`.
        version_id: Option<String>,
        /// `refreshNow=true`.
        refresh: bool,
    },
    /// A secret in one of Vault's shapes.
    Vault {
        /// Index into `config.secrets`.
        secret: usize,
        /// Which shape.
        shape: Shape,
    },
    /// A Parameter Store `parameter` in the AWS extension's shape.
    Ssm {
        /// Index into `config.secrets`.
        secret: usize,
    },
    /// `/secretsmanager/get` without `secretId`.
    MissingId,
    /// Nothing configured answers to this.
    NotFound {
        /// What was asked for: a secret id, or the path under `/v1/`.
        what: String,
        /// Whether it was asked by `secretId` (the AWS agent API).
        by_id: bool,
    },
}

impl Route {
    /// The API whose shape the answer takes: what the route says, else the
    /// token header the client sent.
    pub fn api(&self, aws_header: bool) -> Api {
        match self {
            Route::Aws { .. } | Route::Ssm { .. } | Route::MissingId => Api::Aws,
            Route::NotFound { by_id: true, .. } => Api::Aws,
            Route::Vault { .. } | Route::Mount { .. } | Route::LookupSelf | Route::Health => {
                Api::Vault
            }
            Route::Ping | Route::NotFound { .. } if aws_header => Api::Aws,
            Route::Ping | Route::NotFound { .. } => Api::Vault,
        }
    }
}

/// Where each configured secret is asked for, made once per config: a
/// request finds its secret by one hash lookup, whatever the number of
/// secrets. Where several secrets answer to the same name or path, the first
/// configured one is served.
#[derive(Debug, Default)]
pub struct Index {
    /// Secret name and `secret_id` (the AWS agent's `secretId`).
    by_id: HashMap<String, usize>,
    /// Path under `/v1/`: KV v2 (`MOUNT/data/PATH`), KV v1 (`MOUNT/PATH`)
    /// and logical reads.
    by_path: HashMap<String, (usize, Shape)>,
    /// Parameter name and secret name of `parameter` secrets, with the
    /// selector each is configured with.
    parameters: HashMap<String, Vec<(Option<String>, usize)>>,
}

impl Index {
    /// The index of `config`'s secrets.
    pub fn new(config: &Config) -> Self {
        let mut index = Index::default();
        for (i, s) in config.secrets.iter().enumerate() {
            index.by_id.entry(s.name.clone()).or_insert(i);
            match &s.address {
                Address::SecretId { id, .. } => {
                    index.by_id.entry(id.clone()).or_insert(i);
                }
                Address::Kv {
                    mount,
                    path,
                    kv_version,
                    ..
                } => {
                    if *kv_version != Some(KvVersion::V1) {
                        let kv2 = format!("{mount}/data/{path}");
                        index.by_path.entry(kv2).or_insert((i, Shape::Kv2));
                    }
                    let kv1 = format!("{mount}/{path}");
                    index.by_path.entry(kv1).or_insert((i, Shape::Logical));
                }
                Address::Read(p) => {
                    index
                        .by_path
                        .entry(p.clone())
                        .or_insert((i, Shape::Logical));
                }
                _ => {}
            }
            if let Some((name, selector)) = crate::source::ssm_proxy::served_as(s) {
                for name in [name, s.name.as_str()] {
                    index
                        .parameters
                        .entry(name.to_owned())
                        .or_default()
                        .push((selector.clone(), i));
                }
            }
        }
        index
    }

    fn by_id(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    fn parameter(&self, name: &str, selector: Option<&str>) -> Option<usize> {
        let configured = self.parameters.get(name)?;
        configured
            .iter()
            .find(|(s, _)| s.as_deref() == selector)
            .map(|(_, i)| *i)
    }
}

/// Resolves a request path and query to a configured secret, found in
/// `index`, the [`Index`] of `config`. Only configured secrets are ever
/// served.
pub fn route(config: &Config, index: &Index, path: &str, query: Option<&str>) -> Route {
    if path == "/ping" {
        return Route::Ping;
    }
    let (mut id, mut stage, mut version_id, mut refresh) = (None, None, None, false);
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "secretId" => id = Some(v),
            "versionStage" => stage = Some(v.into_owned()),
            "versionId" => version_id = Some(v.into_owned()),
            "refreshNow" => refresh = v == "true",
            _ => {}
        }
    }
    let aws = |secret: usize| Route::Aws {
        secret,
        stage,
        version_id,
        refresh,
    };
    if path == "/secretsmanager/get" {
        return match id.filter(|id| !id.is_empty()) {
            None => Route::MissingId,
            Some(id) => match index.by_id(&id) {
                Some(i) => aws(i),
                None => Route::NotFound {
                    what: id.into_owned(),
                    by_id: true,
                },
            },
        };
    }
    if path == crate::source::ssm_proxy::PATH {
        return match crate::source::ssm_proxy::find(query, |n, s| index.parameter(n, s)) {
            Ok(secret) => Route::Ssm { secret },
            Err(what) => Route::NotFound { what, by_id: true },
        };
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        return Route::NotFound {
            what: path.to_owned(),
            by_id: false,
        };
    };
    let rest = rest.trim_end_matches('/');
    match rest {
        "sys/health" => return Route::Health,
        "auth/token/lookup-self" => return Route::LookupSelf,
        _ => {}
    }
    if let Some(under) = rest.strip_prefix("sys/internal/ui/mounts/") {
        if let Some(route) = mount(config, under) {
            return route;
        }
    }
    if let Some(&(secret, shape)) = index.by_path.get(rest) {
        return Route::Vault { secret, shape };
    }
    // The AWS agent also answers `/v1/<secretId>`.
    match index.by_id(rest) {
        Some(i) => aws(i),
        None => Route::NotFound {
            what: rest.to_owned(),
            by_id: false,
        },
    }
}

/// The KV mount of a configured secret that `path` is at or under, as the
/// mount lookup answers it: version 2 unless the config says 1 (a KV v2
/// read of a secret is served whatever engine the backend runs).
fn mount(config: &Config, path: &str) -> Option<Route> {
    config.secrets.iter().find_map(|s| match &s.address {
        Address::Kv {
            mount, kv_version, ..
        } => {
            let rest = path.strip_prefix(mount.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then(|| Route::Mount {
                mount: mount.clone(),
                version: kv_version.unwrap_or(KvVersion::V2),
            })
        }
        _ => None,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::path::Path;

    /// Four secrets, one of each address the proxy serves by path or id
    /// (also the config of the answers' tests).
    pub(in crate::proxy) fn config() -> Config {
        Config::parse(
            "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - name: db\n    kv: { mount: secret, path: app/db }\n  - name: old\n    kv: { mount: kv, path: cfg, kv_version: 1 }\n  - name: api\n    secret_id: prod/api\n  - name: creds\n    read: database/creds/app\n",
            Path::new("/"),
        )
        .unwrap()
    }

    fn not_found(what: &str) -> Route {
        Route::NotFound {
            what: what.into(),
            by_id: false,
        }
    }

    #[test]
    fn routes_only_configured_secrets() {
        let c = config();
        let i = Index::new(&c);
        assert_eq!(route(&c, &i, "/ping", None), Route::Ping);
        assert_eq!(
            route(&c, &i, "/v1/secret/data/app/db", None),
            Route::Vault {
                secret: 0,
                shape: Shape::Kv2
            }
        );
        assert_eq!(
            route(&c, &i, "/v1/kv/cfg", None),
            Route::Vault {
                secret: 1,
                shape: Shape::Logical
            }
        );
        assert_eq!(
            route(&c, &i, "/v1/kv/data/cfg", None),
            not_found("kv/data/cfg")
        );
        assert_eq!(
            route(&c, &i, "/v1/database/creds/app", None),
            Route::Vault {
                secret: 3,
                shape: Shape::Logical
            }
        );
        assert_eq!(
            route(
                &c,
                &i,
                "/secretsmanager/get",
                Some("secretId=prod%2Fapi&refreshNow=true")
            ),
            Route::Aws {
                secret: 2,
                stage: None,
                version_id: None,
                refresh: true
            }
        );
        assert!(matches!(
            route(&c, &i, "/secretsmanager/get", Some("secretId=db")),
            Route::Aws { secret: 0, .. }
        ));
        assert!(matches!(
            route(&c, &i, "/v1/prod/api", Some("versionStage=AWSCURRENT")),
            Route::Aws {
                secret: 2,
                stage: Some(_),
                ..
            }
        ));
        let nope = route(&c, &i, "/secretsmanager/get", Some("secretId=nope"));
        assert_eq!(
            nope,
            Route::NotFound {
                what: "nope".into(),
                by_id: true
            }
        );
        assert_eq!(nope.api(false), Api::Aws);
        assert_eq!(
            route(
                &c,
                &i,
                "/secretsmanager/get",
                Some("versionStage=AWSCURRENT")
            ),
            Route::MissingId
        );
        assert_eq!(
            route(&c, &i, "/secretsmanager/get", Some("secretId=")),
            Route::MissingId
        );
        let other = route(&c, &i, "/v1/secret/data/app/other", None);
        assert_eq!(other, not_found("secret/data/app/other"));
        assert_eq!((other.api(false), other.api(true)), (Api::Vault, Api::Aws));
        assert_eq!(route(&c, &i, "/etc/passwd", None), not_found("/etc/passwd"));
    }

    #[test]
    fn the_calls_vault_clients_make_before_a_read_are_routed() {
        let c = config();
        let i = Index::new(&c);
        assert_eq!(route(&c, &i, "/v1/sys/health", None), Route::Health);
        assert_eq!(
            route(&c, &i, "/v1/auth/token/lookup-self", None),
            Route::LookupSelf
        );
        let kv2 = Route::Mount {
            mount: "secret".into(),
            version: KvVersion::V2,
        };
        assert_eq!(
            route(&c, &i, "/v1/sys/internal/ui/mounts/secret", None),
            kv2
        );
        assert_eq!(
            route(&c, &i, "/v1/sys/internal/ui/mounts/secret/app/db", None),
            kv2
        );
        assert_eq!(
            route(&c, &i, "/v1/sys/internal/ui/mounts/kv/cfg", None),
            Route::Mount {
                mount: "kv".into(),
                version: KvVersion::V1
            }
        );
        // Only configured KV mounts, and whole path segments.
        for other in ["secrets/app/db", "database/creds/app", "sys"] {
            let path = format!("/v1/sys/internal/ui/mounts/{other}");
            assert_eq!(
                route(&c, &i, &path, None),
                not_found(&format!("sys/internal/ui/mounts/{other}"))
            );
        }
    }

    #[test]
    fn the_first_configured_secret_answers_a_name_or_path_given_twice() {
        let c = Config::parse(
            "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - { name: a, kv: { mount: kv, path: b/c } }\n  - { name: b, kv: { mount: kv/b, path: c } }\n  - { name: c, read: kv/b/c }\n  - { name: d, secret_id: a }\n  - { name: e, secret_id: prod/x }\n  - { name: f, secret_id: prod/x }\n",
            Path::new("/"),
        )
        .unwrap();
        let i = Index::new(&c);
        let vault = |secret, shape| Route::Vault { secret, shape };
        assert_eq!(route(&c, &i, "/v1/kv/b/c", None), vault(0, Shape::Logical));
        assert_eq!(
            route(&c, &i, "/v1/kv/data/b/c/", None),
            vault(0, Shape::Kv2)
        );
        assert_eq!(route(&c, &i, "/v1/kv/b/data/c", None), vault(1, Shape::Kv2));
        for (q, want) in [("secretId=a", 0), ("secretId=d", 3), ("secretId=prod/x", 4)] {
            assert!(
                matches!(route(&c, &i, "/secretsmanager/get", Some(q)), Route::Aws { secret, .. } if secret == want),
                "{q}"
            );
        }
    }
}
