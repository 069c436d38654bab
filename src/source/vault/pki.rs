//! PKI: a certificate issued from a role (`{mount}/issue/{role}`), with its
//! key, chain, serial (the version) and expiry.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use vaultrs::client::VaultClient;

use super::VaultSource;
use crate::secret::{Fetched, Fields, SecretBytes};
use crate::source::{paced, Error, Result};

/// What a certificate is asked for, as its address says.
pub(super) struct Issue<'a> {
    /// The PKI engine's mount.
    pub mount: &'a str,
    /// The role issued from.
    pub role: &'a str,
    /// The certificate's common name.
    pub common_name: &'a str,
    /// Its lifetime, when not the role's default.
    pub ttl: Option<Duration>,
    /// DNS subject alternative names.
    pub alt_names: &'a [String],
    /// IP subject alternative names.
    pub ip_sans: &'a [String],
}

impl VaultSource {
    /// Issues a new certificate and key.
    pub(super) async fn issue(
        &self,
        c: &VaultClient,
        at: Issue<'_>,
        what: &str,
        deadline: Instant,
    ) -> Result<Fetched> {
        let mut request = serde_json::json!({ "common_name": at.common_name });
        if let Some(t) = at.ttl {
            request["ttl"] = format!("{}s", t.as_secs()).into();
        }
        if !at.alt_names.is_empty() {
            request["alt_names"] = at.alt_names.join(",").into();
        }
        if !at.ip_sans.is_empty() {
            request["ip_sans"] = at.ip_sans.join(",").into();
        }
        let token = SecretBytes::copy_from(&c.middle.token);
        let path = format!("{}/issue/{}", at.mount, at.role);
        let body = paced(&self.gate, deadline, what, || {
            self.call(
                &token,
                reqwest::Method::POST,
                &path,
                Some(request.clone()),
                what,
            )
        })
        .await?;
        pki_fetched(body, what)
    }
}

pub(crate) fn pki_fetched(mut body: serde_json::Value, what: &str) -> Result<Fetched> {
    let data = body
        .get_mut("data")
        .map(serde_json::Value::take)
        .unwrap_or_default();
    let text = |key: &str| data.get(key).and_then(serde_json::Value::as_str);
    let (Some(certificate), Some(private_key), Some(serial)) = (
        text("certificate"),
        text("private_key"),
        text("serial_number"),
    ) else {
        return Err(Error::data(format!(
            "{what}: the answer lacks certificate, private_key or serial_number"
        )));
    };
    let issuing_ca = text("issuing_ca").unwrap_or_default();
    let chain: Vec<&str> = data
        .get("ca_chain")
        .and_then(serde_json::Value::as_array)
        .map(|c| c.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    let chain = if chain.is_empty() {
        issuing_ca.to_owned()
    } else {
        chain.join("\n")
    };
    let mut fields = Fields::new();
    fields.insert("certificate".into(), SecretBytes::copy_from(certificate));
    fields.insert("private_key".into(), SecretBytes::copy_from(private_key));
    fields.insert("ca_chain".into(), SecretBytes::from_string(chain));
    fields.insert("issuing_ca".into(), SecretBytes::copy_from(issuing_ca));
    fields.insert("serial_number".into(), SecretBytes::copy_from(serial));
    let mut f = Fetched::fields(fields);
    f.version = Some(serial.to_owned());
    f.expires = data
        .get("expiration")
        .and_then(serde_json::Value::as_u64)
        .map(|s| crate::clock::since_epoch(s, SystemTime::now()));
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiration_near_u64_max_is_ten_years_not_an_abort() {
        let body = serde_json::json!({ "data": {
            "certificate": "c", "private_key": "k", "serial_number": "s", "expiration": u64::MAX,
        } });
        let f = pki_fetched(body, "issue").unwrap();
        assert!(f.expires.unwrap() <= SystemTime::now() + crate::clock::MAX_SPAN);
    }
}
