//! Reading one version (GetSecretValue, for a pinned stage or id, the
//! `AWSPREVIOUS` of `previous: true`, and what a batch left unanswered) and
//! turning a stored value into fields; how messages name a secret and its version.

use std::sync::atomic::Ordering;

use std::time::SystemTime;

use aws_sdk_secretsmanager::primitives::{Blob, DateTime};
use aws_sdk_secretsmanager::Client;
use tokio::time::Instant;

use super::errors::classify;
use super::Inner;
use crate::config::AwsVersion;
use crate::secret::{Fetched, Fields, Origin, SecretBytes};
use crate::source::{fields_from_json, paced, Error, Result};

/// The name of the one field of a plain-text or binary secret.
pub const VALUE_FIELD: &str = "value";

impl Inner {
    /// One GetSecretValue, retried until `deadline`.
    pub(super) async fn get(
        &self,
        client: &Client,
        id: &str,
        version: &AwsVersion,
        deadline: Instant,
    ) -> Result<Fetched> {
        let what = what(id, Some(version));
        paced(&self.gate, deadline, &what, || async {
            let _permit = self.permits.acquire().await.ok();
            self.calls.get_secret_value.fetch_add(1, Ordering::Relaxed);
            let call = client.get_secret_value().secret_id(id);
            let call = match version {
                AwsVersion::Stage(s) => call.version_stage(s),
                AwsVersion::Id(v) => call.version_id(v),
            };
            let out = call.send().await.map_err(|e| classify(e, &what).error)?;
            let value = value_of(out.secret_string, out.secret_binary);
            let origin = origin(out.arn, out.created_date);
            fetched(&what, value, out.version_id, origin)
        })
        .await
    }
}

/// How messages name a secret: `secret_id `x``, with its version when pinned.
pub(super) fn what(id: &str, version: Option<&AwsVersion>) -> String {
    match version {
        Some(v) if v.is_current() => format!("secret_id `{id}`"),
        Some(AwsVersion::Stage(s)) => format!("secret_id `{id}` ({s})"),
        Some(AwsVersion::Id(v)) => format!("secret_id `{id}` (version {v})"),
        None => format!("secret_id `{id}`"),
    }
}

/// A secret's value as the SDK hands it over, moved into [`SecretBytes`] at once.
pub(crate) enum Value {
    Text(SecretBytes),
    Binary(SecretBytes),
    None,
}

pub(crate) fn value_of(string: Option<String>, binary: Option<Blob>) -> Value {
    match (string, binary) {
        (Some(s), _) => Value::Text(SecretBytes::from_string(s)),
        (None, Some(b)) => Value::Binary(SecretBytes::new(b.into_inner())),
        (None, None) => Value::None,
    }
}

/// The secret's ARN and the version's CreatedDate (a parameter's
/// LastModifiedDate), as the service gave them.
pub(in crate::source) fn origin(arn: Option<String>, created: Option<DateTime>) -> Origin {
    Origin {
        arn,
        created: created.and_then(|d| SystemTime::try_from(d).ok()),
    }
}

/// Fields of a value: a JSON object's members, else one field `value`.
pub(crate) fn fetched(
    what: &str,
    value: Value,
    version_id: Option<String>,
    origin: Origin,
) -> Result<Fetched> {
    let (fields, stored) = match value {
        Value::Text(text) => match text.expose_str() {
            Some(s) if s.trim_start().starts_with('{') => {
                match serde_json::from_str::<serde_json::Value>(s) {
                    Ok(object @ serde_json::Value::Object(_)) => {
                        (fields_from_json(object, what)?, text)
                    }
                    _ => (one_field(text.clone()), text),
                }
            }
            _ => (one_field(text.clone()), text),
        },
        Value::Binary(bytes) => (one_field(bytes.clone()), bytes),
        Value::None => {
            return Err(Error::data(format!(
                "{what}: the version has neither SecretString nor SecretBinary"
            )))
        }
    };
    let mut f = Fetched::fields(fields);
    f.version = version_id;
    f.stored = Some(stored);
    f.origin = origin;
    Ok(f)
}

fn one_field(bytes: SecretBytes) -> Fields {
    let mut fields = Fields::new();
    fields.insert(VALUE_FIELD.into(), bytes);
    fields
}
#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(SecretBytes::copy_from(s))
    }

    #[test]
    fn a_json_object_gives_fields_anything_else_one_value() {
        let f = fetched(
            "x",
            text(r#"{"user":"app","port":5432,"on":true,"n":null}"#),
            Some("v1".into()),
            origin(
                Some("arn:x".into()),
                Some(DateTime::from_secs(1_700_000_000)),
            ),
        )
        .unwrap();
        assert_eq!(f.fields["user"].expose(), b"app");
        assert_eq!(f.fields["port"].expose(), b"5432");
        assert_eq!(f.fields["on"].expose(), b"true");
        assert_eq!(f.fields["n"].expose(), b"");
        assert_eq!(f.version.as_deref(), Some("v1"));
        assert_eq!(f.origin.arn.as_deref(), Some("arn:x"));
        assert_eq!(
            f.origin.created,
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
        );
        assert_eq!(
            f.stored.as_ref().map(SecretBytes::expose),
            Some(br#"{"user":"app","port":5432,"on":true,"n":null}"#.as_slice())
        );
        for plain in ["hunter2", "[1,2]", "\"quoted\"", "{not json", " 42 "] {
            let f = fetched("x", text(plain), None, Origin::default()).unwrap();
            assert_eq!(f.fields.len(), 1, "{plain}");
            assert_eq!(f.fields[VALUE_FIELD].expose(), plain.as_bytes());
            assert_eq!(f.stored.unwrap().expose(), plain.as_bytes());
        }
        let f = fetched(
            "x",
            Value::Binary(SecretBytes::new(vec![0, 255, 10])),
            None,
            Origin::default(),
        )
        .unwrap();
        assert_eq!(f.fields[VALUE_FIELD].expose(), &[0, 255, 10]);
        let e = fetched("secret_id `a`", Value::None, None, Origin::default()).unwrap_err();
        assert!(
            matches!(e, Error::Data { .. }) && e.to_string().contains("`a`"),
            "{e}"
        );
    }
}
