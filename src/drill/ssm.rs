//! Parameter Store rotation: `PutParameter` of a new value of the same shape
//! over the parameter (`Overwrite`, with the type, KMS key, tier and data
//! type it has), which makes a new version; the sidecar follows new
//! versions. Undoing puts the old value back the same way, as a newer
//! version, and only while the latest version is still the drill's: a
//! version written meanwhile, such as a real rotation, is left as it is.
//! (Parameter Store has no conditional write: a version written between the
//! check and the put would be overwritten, a window of one call.)

use aws_sdk_ssm::types::{ParameterStringFilter, ParameterTier, ParameterType};
use aws_sdk_ssm::Client;

use super::aws::paced_call;
use super::rotated::{Restored, Rotated, Undo};
use super::shape::{self, Set};
use super::Error;
use crate::config::Aws;
use crate::engine::backoff::{Backoff, Gate};
use crate::secret::SecretBytes;
use crate::source::{self, SsmSource, VALUE_FIELD};

/// One parameter to rotate.
pub struct SsmTarget {
    source: SsmSource,
    name: String,
    gate: Gate,
}

/// How to put the old value back.
pub struct SsmUndo {
    /// The value before the drill.
    old: SecretBytes,
    /// The version the drill wrote.
    version: i64,
    /// How the parameter is stored, to write it back the same way.
    kind: Kind,
}

/// How a parameter is stored: what a put must say to keep it so.
#[derive(Clone)]
struct Kind {
    /// Its name (an ARN in the config becomes the name here).
    name: String,
    r#type: Option<ParameterType>,
    key_id: Option<String>,
    tier: Option<ParameterTier>,
    data_type: Option<String>,
}

impl SsmTarget {
    /// The parameter `name` of the source `source`; nothing is called yet.
    pub fn new(source: &str, settings: &Aws, name: &str) -> Self {
        SsmTarget {
            source: SsmSource::new(source, settings),
            name: name.to_owned(),
            gate: Gate::new(Backoff::default()),
        }
    }

    /// Puts a new version with a new value of the old one's shape, or the
    /// `value` of `--set`.
    pub async fn rotate(
        &self,
        sets: &[Set],
        deadline: tokio::time::Instant,
    ) -> Result<Rotated, Error> {
        let client = self.source.sdk().await?;
        let (old, version, kind) = self.current(&client, deadline).await?;
        let old_text = old.expose_str().ok_or_else(|| {
            Error::Source(source::Error::data(format!(
                "parameter `{}`: the value is not UTF-8 text",
                self.name
            )))
        })?;
        let new = shape::one_value(old_text, sets).map_err(Error::Usage)?;
        let written = self.put(&client, &kind, &new, deadline).await?;
        let mut rotated = Rotated::now(
            "PutParameter",
            version.to_string(),
            written.to_string(),
            vec![VALUE_FIELD.to_owned()],
            sets,
        );
        rotated.undo = Some(Undo::Ssm(SsmUndo {
            old,
            version: written,
            kind,
        }));
        Ok(rotated)
    }

    /// Puts the old value back as a new version, unless a version after the
    /// drill's was written meanwhile.
    pub async fn restore(
        &self,
        undo: &SsmUndo,
        deadline: tokio::time::Instant,
    ) -> Result<Restored, Error> {
        let client = self.source.sdk().await?;
        let (_, now, _) = self.current(&client, deadline).await?;
        let drills = undo.version;
        if now != drills {
            return Ok(Restored::Left(format!(
                "parameter `{}` is at version {now}, not at the drill's version {drills}: a version written after the drill started; left as it is",
                self.name
            )));
        }
        let back = self.put(&client, &undo.kind, &undo.old, deadline).await?;
        Ok(Restored::Done(format!(
            "the old value of parameter `{}` put back as version {back}",
            self.name
        )))
    }

    /// The parameter's value, version and how it is stored.
    async fn current(
        &self,
        client: &Client,
        deadline: tokio::time::Instant,
    ) -> Result<(SecretBytes, i64, Kind), Error> {
        let name = self.name.as_str();
        let what = format!("GetParameter of parameter `{name}`");
        let got = paced_call(&self.gate, &what, deadline, || {
            client
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
        })
        .await?;
        let missing = |part: &str| {
            Error::Source(source::Error::data(format!(
                "parameter `{name}`: GetParameter answered without its {part}"
            )))
        };
        let p = got.parameter.ok_or_else(|| missing("parameter"))?;
        let value = SecretBytes::from_string(p.value.ok_or_else(|| missing("value"))?);
        let real = p.name.ok_or_else(|| missing("name"))?;
        let what = format!("DescribeParameters of parameter `{name}`");
        let filter = ParameterStringFilter::builder()
            .key("Name")
            .option("Equals")
            .values(&real)
            .build()
            .map_err(|e| Error::Usage(format!("parameter `{name}`: {e}")))?;
        let described = paced_call(&self.gate, &what, deadline, || {
            client
                .describe_parameters()
                .parameter_filters(filter.clone())
                .send()
        })
        .await?;
        let meta = described
            .parameters
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.name.as_deref() == Some(real.as_str()));
        let kind = Kind {
            r#type: meta.as_ref().and_then(|m| m.r#type.clone()).or(p.r#type),
            key_id: meta.as_ref().and_then(|m| m.key_id.clone()),
            tier: meta.as_ref().and_then(|m| m.tier.clone()),
            data_type: meta.and_then(|m| m.data_type).or(p.data_type),
            name: real,
        };
        Ok((value, p.version, kind))
    }

    /// `PutParameter` of `value` over the parameter, stored as `kind` says;
    /// returns the new version.
    async fn put(
        &self,
        client: &Client,
        kind: &Kind,
        value: &SecretBytes,
        deadline: tokio::time::Instant,
    ) -> Result<i64, Error> {
        let text = value.expose_str().unwrap_or_default();
        let what = format!("PutParameter of parameter `{}`", self.name);
        let put = client
            .put_parameter()
            .name(&kind.name)
            .value(text)
            .overwrite(true)
            .set_type(kind.r#type.clone())
            .set_key_id(kind.key_id.clone())
            .set_tier(kind.tier.clone())
            .set_data_type(kind.data_type.clone());
        let out = paced_call(&self.gate, &what, deadline, || put.clone().send()).await?;
        Ok(out.version)
    }
}
