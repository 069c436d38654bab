//! AWS Systems Manager Parameter Store, on aws-sdk-ssm with the same SDK
//! config as Secrets Manager (the default credential chain, an optional
//! region, profile and endpoint; the SDK's own retries off).
//!
//! **Reads.** A `parameter` is read with GetParameters (`WithDecryption`, so a
//! `SecureString` comes back decrypted): fetches are queued for a few
//! milliseconds and sent 10 names a call ([`batch`]), a pinned version or
//! label as the `name:N` / `name:label` selector. Its one field is `value`
//! (the value as stored, also what `raw` writes); `Fetched::version` is the
//! parameter's version, so the sidecar follows new versions. A name the call
//! lists as invalid is not found (exit 65, naming it). `parameters_by_path`
//! pages through GetParametersByPath (recursive, decrypted), one field per
//! parameter keyed by the last segment of its name; two parameters with the
//! same last segment, or none under the path, are errors that name them.
//!
//! **Errors** are classified as for Secrets Manager
//! ([`sdk_error`](super::sdk_error)): throttling and outages are retried
//! through the source's gate until the deadline.
//!
//! **Elsewhere.** The config keys are declared in [`config`] (registered in
//! [`crate::source::backend`]) and parsed in [`address`]; the proxy
//! serves parameters as the AWS Parameters and Secrets extension does
//! ([`proxy`]); the injector names it `ssm:NAME` and `ssm-path:PATH` ([`pod`]). Values move into [`SecretBytes`] as soon as the SDK hands them
//! over; the SDK's own buffers are not zeroized.

mod address;
mod batch;
mod config;
mod drill;
mod path;
mod pod;
mod proxy;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_ssm::Client;
use futures::future::BoxFuture;
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

pub use address::{Parameter, SsmAddress};
pub use config::SsmSettings;
pub(crate) use config::BACKEND;

use super::batch::Queue;
use super::{Error, Result, Source};
use crate::backoff::{Backoff, Gate, Pace};
use crate::config::{Address, Aws, Secret};
use crate::secret::{Fetched, Fields, Origin, SecretBytes};
use crate::source::rotator::Rotator;

/// API calls in flight at once, per source.
const IN_FLIGHT: usize = 16;

/// A Parameter Store account and region; the client is built on first use.
pub struct SsmSource {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    settings: Aws,
    client: OnceCell<Client>,
    queue: Mutex<Queue<Parameter>>,
    calls: Calls,
    permits: Semaphore,
    gate: Gate,
}

/// API calls made, per operation (each attempt counts).
#[derive(Default)]
struct Calls {
    get_parameters: AtomicU64,
    get_parameters_by_path: AtomicU64,
}

impl SsmSource {
    /// A source named `name`; nothing is read or resolved until the first fetch.
    pub fn new(name: &str, settings: &Aws) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                settings: settings.clone(),
                client: OnceCell::new(),
                queue: Mutex::new(Queue::default()),
                calls: Calls::default(),
                permits: Semaphore::new(IN_FLIGHT),
                gate: Gate::new(Backoff::default()),
            }),
        }
    }
}

impl SsmSource {
    /// The SDK client, for calls other than reads (the rotation drill's).
    pub async fn sdk(&self) -> Result<Client> {
        self.inner.client().await
    }
}

impl Inner {
    /// The client, built on first use from the SDK's default chain.
    async fn client(&self) -> Result<Client> {
        super::aws::client(&self.client, &self.name, &self.settings, |sdk, cap| {
            Client::from_conf(
                aws_sdk_ssm::config::Builder::from(sdk)
                    .interceptor(cap)
                    .build(),
            )
        })
        .await
    }
}

impl Source for SsmSource {
    fn rotator(&self, secret: &Secret) -> std::result::Result<Box<dyn Rotator + '_>, String> {
        drill::rotator(self, secret)
    }

    fn fetch<'a>(
        &'a self,
        secret: &'a Secret,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Fetched>> {
        Box::pin(async move {
            match &secret.address {
                Address::SsmParameterStore(SsmAddress::Parameter(p @ Parameter::Name { .. })) => {
                    self.queued(p, deadline).await
                }
                // Boxed: the SDK's future is large, and a fetch waiting for
                // its batch (above) would hold the space for it.
                Address::SsmParameterStore(SsmAddress::Parameter(Parameter::Path(path))) => {
                    Box::pin(self.inner.by_path(path, deadline)).await
                }
                other => Err(Error::config(format!(
                    "source {}: Parameter Store reads `parameter` and `parameters_by_path` secrets, not `{}`",
                    self.inner.name,
                    other.kind()
                ))),
            }
        })
    }

    fn batches(&self) -> bool {
        true
    }

    fn pace(&self) -> Pace {
        self.inner.gate.pace()
    }

    fn api_calls(&self) -> Vec<(&'static str, u64)> {
        let c = &self.inner.calls;
        vec![
            ("GetParameters", c.get_parameters.load(Ordering::Relaxed)),
            (
                "GetParametersByPath",
                c.get_parameters_by_path.load(Ordering::Relaxed),
            ),
        ]
    }
}

/// A parameter's value as its one field, `value`, and as stored, with its
/// ARN and LastModifiedDate.
fn one_value(value: SecretBytes, version: i64, origin: Origin) -> Fetched {
    let mut fields = Fields::new();
    fields.insert(super::VALUE_FIELD.into(), value.clone());
    let mut f = Fetched::fields(fields);
    f.version = Some(version.to_string());
    f.stored = Some(value);
    f.origin = origin;
    f
}
