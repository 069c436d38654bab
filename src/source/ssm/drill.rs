//! How the rotation drill rotates a Parameter Store parameter: `PutParameter` of a new value of the same shape
//! over the parameter (`Overwrite`, with the type, KMS key, tier and data
//! type it has), which makes a new version; the sidecar follows new
//! versions. Undoing puts the old value back the same way, as a newer
//! version, and only while the latest version is still the drill's: a
//! version written meanwhile, such as a real rotation, is left as it is.
//! (Parameter Store has no conditional write: a version written between the
//! check and the put would be overwritten, a window of one call.)

use aws_sdk_ssm::types::{ParameterStringFilter, ParameterTier, ParameterType};
use aws_sdk_ssm::Client;
use futures::future::BoxFuture;

use super::{SsmAddress, SsmSource};
use crate::backoff::{Backoff, Gate};
use crate::config::{Address, Secret};
use crate::secret::SecretBytes;
use crate::source::aws::paced_call;
use crate::source::rotator::shape::{self, Set};
use crate::source::rotator::{Error, Job, Restored, Rotated, Rotator, Undo};
use crate::source::{self, VALUE_FIELD};

/// One parameter to rotate.
struct SsmRotator<'a> {
    source: &'a SsmSource,
    name: String,
    gate: Gate,
}

/// How to put the old value back.
struct Put {
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

/// The rotator of `secret`, read from `source`; the error says why it
/// cannot be drilled.
pub(super) fn rotator<'a>(
    source: &'a SsmSource,
    secret: &Secret,
) -> Result<Box<dyn Rotator + 'a>, String> {
    let Address::SsmParameterStore(SsmAddress::Parameter(p)) = &secret.address else {
        return Err(
            "Parameter Store holds `parameter` and `parameters_by_path` secrets only".into(),
        );
    };
    match (p.latest(), p.one_value()) {
        (Some(name), _) => Ok(Box::new(SsmRotator {
            source,
            name: name.to_owned(),
            gate: Gate::new(Backoff::default()),
        })),
        (None, true) => {
            Err("it pins a version or label: a new version would never reach the app".into())
        }
        (None, false) => Err("the drill rotates one `parameter`: drill the parameters under a path one by one, each as a secret of its own".into()),
    }
}

impl Rotator for SsmRotator<'_> {
    fn describe(&self) -> &'static str {
        "ssm parameter"
    }

    fn rotate<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Rotated, Error>> {
        Box::pin(self.put_new(job.sets, job.deadline))
    }

    fn restore<'a>(
        &'a self,
        undo: &'a Undo,
        deadline: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<Restored, Error>> {
        Box::pin(async move { self.put_back(undo.get()?, deadline).await })
    }
}

impl SsmRotator<'_> {
    /// Puts a new version with a new value of the old one's shape, or the
    /// `value` of `--set`.
    async fn put_new(
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
        rotated.undo = Some(Undo::new(Put {
            old,
            version: written,
            kind,
        }));
        Ok(rotated)
    }

    /// Puts the old value back as a new version, unless a version after the
    /// drill's was written meanwhile.
    async fn put_back(
        &self,
        undo: &Put,
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
