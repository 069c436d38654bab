//! A JWT signer with its own RSA key (made by openssl), for JWT logins.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{openssl, rand_u64};

/// An RSA key pair made with openssl, to sign JWTs for OpenBao's jwt auth.
pub struct JwtSigner {
    key: PathBuf,
    /// The public key, PEM, for `auth/jwt/config`'s `jwt_validation_pubkeys`.
    pub public_pem: String,
}

impl JwtSigner {
    /// A new key pair in `dir`.
    pub fn new(dir: &Path) -> JwtSigner {
        let key = dir.join(format!("jwt-{:x}.key", rand_u64()));
        openssl(&["genrsa", "-out", key.to_str().unwrap(), "2048"]);
        let public_pem =
            String::from_utf8(openssl(&["rsa", "-in", key.to_str().unwrap(), "-pubout"])).unwrap();
        JwtSigner { key, public_pem }
    }

    /// The private key file, PEM.
    pub fn key_file(&self) -> &Path {
        &self.key
    }

    /// An RS256 JWT of `claims`.
    pub fn sign(&self, claims: Value) -> String {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"RS256","typ":"JWT"}"#),
            b64(claims.to_string().as_bytes())
        );
        let path = self.key.with_extension("input");
        std::fs::write(&path, &input).unwrap();
        let sig = openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            self.key.to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        format!("{input}.{}", b64(&sig))
    }
}
