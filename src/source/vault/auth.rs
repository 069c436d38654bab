//! A Vault source's `auth:` (`sources[].vault.auth`), as written and
//! validated: exactly one login method, among them the two that need more
//! than a role and a file, `aws` (IAM: a signed sts:GetCallerIdentity) and
//! `cert` (a TLS client certificate). [`super::login`] logs in with it.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{clean_mount, one_of, one_of_schema, OneOf, Validator, SERVICE_ACCOUNT_TOKEN};

/// Vault auth methods: exactly one.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_of_schema::<Self>)]
pub struct RawAuth {
    /// A file holding a Vault token.
    pub token_file: Option<PathBuf>,
    /// AppRole login.
    pub approle: Option<RawAppRole>,
    /// Kubernetes service-account login.
    pub kubernetes: Option<RawRoleLogin>,
    /// JWT login.
    pub jwt: Option<RawRoleLogin>,
    /// AWS IAM login: a signed sts:GetCallerIdentity, with the AWS SDK's default credential chain.
    pub aws: Option<RawAwsLogin>,
    /// TLS client certificate login.
    pub cert: Option<RawCertLogin>,
}

one_of!(RawAuth: token_file, approle, kubernetes, jwt, aws, cert);

/// AWS IAM login (EKS IRSA or Pod Identity, instance profiles, any credential of the chain).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAwsLogin {
    /// Auth mount (default `aws`).
    pub mount: Option<String>,
    /// Vault role to log in as.
    pub role: String,
    /// Region of the STS endpoint the request is signed for (default `us-east-1`, the global
    /// endpoint); must match the server's `sts_region`.
    pub region: Option<String>,
    /// Value of the `X-Vault-AWS-IAM-Server-ID` header, when the server requires one.
    pub header_value: Option<String>,
}

/// TLS client certificate login; the files are read at each login.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCertLogin {
    /// Auth mount (default `cert`).
    pub mount: Option<String>,
    /// The certificate role to log in as (default: any role the certificate matches).
    pub name: Option<String>,
    /// PEM file of the client certificate (and its chain).
    pub client_cert: PathBuf,
    /// PEM file of the client certificate's private key.
    pub client_key: PathBuf,
}

/// AppRole credentials, each read from a file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAppRole {
    /// Auth mount (default `approle`).
    pub mount: Option<String>,
    /// File holding the role id.
    pub role_id_file: PathBuf,
    /// File holding the secret id.
    pub secret_id_file: PathBuf,
}

/// A role-based JWT login (kubernetes or jwt).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoleLogin {
    /// Auth mount (default `kubernetes` or `jwt`).
    pub mount: Option<String>,
    /// Vault role to log in as.
    pub role: String,
    /// File holding the JWT (default for kubernetes: the service-account token).
    pub token_file: Option<PathBuf>,
}

/// Vault login methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// A token read from a file.
    TokenFile(PathBuf),
    /// AppRole.
    AppRole {
        /// Auth mount.
        mount: String,
        /// File with the role id.
        role_id_file: PathBuf,
        /// File with the secret id.
        secret_id_file: PathBuf,
    },
    /// Kubernetes service-account JWT.
    Kubernetes(RoleLogin),
    /// Any JWT.
    Jwt(RoleLogin),
    /// AWS IAM: a signed sts:GetCallerIdentity.
    Aws(AwsLogin),
    /// A TLS client certificate.
    Cert(CertLogin),
}

/// A role-based JWT login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleLogin {
    /// Auth mount.
    pub mount: String,
    /// Role.
    pub role: String,
    /// File holding the JWT.
    pub token_file: PathBuf,
}

/// The region whose STS endpoint a login is signed for when none is given:
/// the global endpoint, as Vault's server expects by default.
pub const DEFAULT_STS_REGION: &str = "us-east-1";

/// AWS IAM login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsLogin {
    /// Auth mount.
    pub mount: String,
    /// Vault role.
    pub role: String,
    /// Region of the STS endpoint the request is signed for.
    pub region: String,
    /// `X-Vault-AWS-IAM-Server-ID`, when the server requires it.
    pub header_value: Option<String>,
}

impl AwsLogin {
    /// The STS endpoint the request is signed for: the global one for
    /// `us-east-1`, else the region's.
    pub fn sts_url(&self) -> String {
        if self.region == DEFAULT_STS_REGION {
            "https://sts.amazonaws.com/".into()
        } else {
            format!("https://sts.{}.amazonaws.com/", self.region)
        }
    }
}

/// TLS client certificate login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertLogin {
    /// Auth mount.
    pub mount: String,
    /// The certificate role, when one is named.
    pub name: Option<String>,
    /// PEM certificate (and chain), read at each login.
    pub client_cert: PathBuf,
    /// PEM private key, read at each login.
    pub client_key: PathBuf,
}

/// The login that `a`, the `auth:` at `at`, gives; problems go to `v`.
pub(super) fn read(v: &mut Validator<'_>, at: &str, a: RawAuth) -> Option<Auth> {
    if !v.exactly_one(at, &a) {
        return None;
    }
    let login = |v: &mut Validator<'_>, r: RawRoleLogin, mount: &str, token: Option<&str>| {
        let file = r
            .token_file
            .or(token.map(PathBuf::from))
            .unwrap_or_default();
        RoleLogin {
            mount: clean_mount(r.mount.as_deref().unwrap_or(mount)),
            role: r.role,
            token_file: v.path(&format!("{at}.{mount}.token_file"), file),
        }
    };
    if let Some(f) = a.token_file {
        Some(Auth::TokenFile(v.path(&format!("{at}.token_file"), f)))
    } else if let Some(r) = a.approle {
        Some(Auth::AppRole {
            mount: clean_mount(r.mount.as_deref().unwrap_or("approle")),
            role_id_file: v.path(&format!("{at}.approle.role_id_file"), r.role_id_file),
            secret_id_file: v.path(&format!("{at}.approle.secret_id_file"), r.secret_id_file),
        })
    } else if let Some(k) = a.kubernetes {
        Some(Auth::Kubernetes(login(
            v,
            k,
            "kubernetes",
            Some(SERVICE_ACCOUNT_TOKEN),
        )))
    } else if let Some(j) = a.jwt {
        if j.token_file.is_none() {
            v.problem(format!("{at}.jwt.token_file"), "missing: the JWT file");
            return None;
        }
        Some(Auth::Jwt(login(v, j, "jwt", None)))
    } else if let Some(l) = a.aws {
        aws_login(v, &format!("{at}.aws"), l)
    } else {
        a.cert.map(|l| cert_login(v, &format!("{at}.cert"), l))
    }
}

fn aws_login(v: &mut Validator<'_>, at: &str, l: RawAwsLogin) -> Option<Auth> {
    let before = v.problems();
    let region = l.region.unwrap_or_else(|| DEFAULT_STS_REGION.into());
    v.region(&format!("{at}.region"), &region);
    if l.role.is_empty() {
        v.problem(format!("{at}.role"), "must not be empty");
    }
    if let Some(h) = &l.header_value {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic()) {
            v.problem(
                format!("{at}.header_value"),
                "must be non-empty printable ASCII",
            );
        }
    }
    if v.problems() != before {
        return None;
    }
    Some(Auth::Aws(AwsLogin {
        mount: clean_mount(l.mount.as_deref().unwrap_or("aws")),
        role: l.role,
        region,
        header_value: l.header_value,
    }))
}

fn cert_login(v: &mut Validator<'_>, at: &str, l: RawCertLogin) -> Auth {
    Auth::Cert(CertLogin {
        mount: clean_mount(l.mount.as_deref().unwrap_or("cert")),
        name: l.name.filter(|n| !n.is_empty()),
        client_cert: v.path(&format!("{at}.client_cert"), l.client_cert),
        client_key: v.path(&format!("{at}.client_key"), l.client_key),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, Problem, SourceKind};

    fn auth(text: &str) -> Result<Auth, Vec<Problem>> {
        let c = Config::parse(
            &format!("sources:\n  - vault: {{ address: https://v:8200, auth: {text} }}\noutput: {{ dir: /x }}\nsecrets: [ {{ name: a, read: a/b }} ]\n"),
            Path::new("/cfg"),
        )?;
        match &c.sources[0].kind {
            SourceKind::Vault(v) => Ok(v.auth.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aws_and_cert_logins_resolve_their_defaults() {
        match auth("{ aws: { role: app } }").unwrap() {
            Auth::Aws(l) => {
                assert_eq!((l.mount.as_str(), l.region.as_str()), ("aws", "us-east-1"));
                assert_eq!(l.sts_url(), "https://sts.amazonaws.com/");
            }
            other => panic!("{other:?}"),
        }
        match auth("{ aws: { role: app, region: eu-west-1, mount: /eks/ } }").unwrap() {
            Auth::Aws(l) => {
                assert_eq!(l.mount, "eks");
                assert_eq!(l.sts_url(), "https://sts.eu-west-1.amazonaws.com/");
            }
            other => panic!("{other:?}"),
        }
        match auth("{ cert: { client_cert: c.pem, client_key: k.pem } }").unwrap() {
            Auth::Cert(l) => {
                assert_eq!(l.mount, "cert");
                assert_eq!(l.client_key, Path::new("/cfg/k.pem"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_logins_name_the_key() {
        let e = auth("{ aws: { role: app, region: EU } }").unwrap_err();
        assert_eq!(e[0].path, "sources[0].vault.auth.aws.region", "{e:?}");
        let e = auth("{ aws: { role: app }, token_file: t }").unwrap_err();
        assert_eq!(
            e[0].message,
            "needs exactly one of `token_file`, `approle`, `kubernetes`, `jwt`, `aws` or `cert`"
        );
        let e = Config::parse(
            "sources:\n  - vault: { address: http://v:8200, auth: { cert: { client_cert: c, client_key: k } } }\noutput: { dir: /x }\nsecrets: [ { name: a, read: a/b } ]\n",
            Path::new("/cfg"),
        )
        .unwrap_err();
        assert_eq!(e[0].path, "sources[0].vault.auth.cert", "{e:?}");
        assert!(e[0].message.contains("https://"), "{e:?}");
    }
}
