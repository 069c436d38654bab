//! The Vault login methods that need more than a role and a file: `aws`
//! (IAM: a signed sts:GetCallerIdentity) and `cert` (a TLS client certificate).

use std::path::PathBuf;

use super::raw::{RawAwsLogin, RawCertLogin};
use super::{clean_mount, Auth, Validator};

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

impl Validator<'_> {
    /// An AWS region name such as `eu-west-1`.
    pub(super) fn region(&mut self, at: &str, r: &str) {
        let ok = !r.is_empty()
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            self.problem(
                at,
                format!("`{}` is not a region name like eu-west-1", r.escape_debug()),
            );
        }
    }

    pub(super) fn aws_login(&mut self, at: &str, l: RawAwsLogin) -> Option<Auth> {
        let before = self.problems.len();
        let region = l.region.unwrap_or_else(|| DEFAULT_STS_REGION.into());
        self.region(&format!("{at}.region"), &region);
        if l.role.is_empty() {
            self.problem(format!("{at}.role"), "must not be empty");
        }
        if let Some(h) = &l.header_value {
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic()) {
                self.problem(
                    format!("{at}.header_value"),
                    "must be non-empty printable ASCII",
                );
            }
        }
        if self.problems.len() != before {
            return None;
        }
        Some(Auth::Aws(AwsLogin {
            mount: clean_mount(l.mount.as_deref().unwrap_or("aws")),
            role: l.role,
            region,
            header_value: l.header_value,
        }))
    }

    pub(super) fn cert_login(&mut self, at: &str, l: RawCertLogin) -> Auth {
        Auth::Cert(CertLogin {
            mount: clean_mount(l.mount.as_deref().unwrap_or("cert")),
            name: l.name.filter(|n| !n.is_empty()),
            client_cert: self.path(&format!("{at}.client_cert"), l.client_cert),
            client_key: self.path(&format!("{at}.client_key"), l.client_key),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, SourceKind};
    use super::*;

    fn auth(text: &str) -> Result<Auth, Vec<super::super::Problem>> {
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
