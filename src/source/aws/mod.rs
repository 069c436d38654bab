//! AWS Secrets Manager, on aws-config and aws-sdk-secretsmanager, with the
//! SDK's default credential chain (environment, profile, web identity, EKS Pod
//! Identity or ECS, IMDS) and an optional region, profile and endpoint.
//!
//! **Batching.** `fetch` stays one secret at a time, but fetches of the current
//! version are queued: the first one starts a collector task that waits a few
//! milliseconds ([`WINDOW`](crate::source::batch::WINDOW)), takes every id
//! queued by then, drops duplicates, and reads them with BatchGetSecretValue, 20 ids per call. Per-secret
//! failures come back in the call's `Errors` list. A pinned `version_stage` or
//! `version_id`, and the `AWSPREVIOUS` read of `previous: true`, go through
//! GetSecretValue, which the batch call cannot do. When a policy denies the
//! batch call (AccessDeniedException), the source says why once and reads one
//! secret per GetSecretValue from then on. N current secrets thus cost ⌈N/20⌉
//! calls, plus one per pinned or `previous` secret.
//!
//! **Values and fields.** By default a secret's file holds its `SecretString`
//! or `SecretBinary` exactly as stored (format `raw` without `key`, the
//! default for AWS secrets), as the CSI driver and the AWS agent give it. For
//! `key` and the other formats, a `SecretString` that is a JSON object gives
//! one field per member (strings as their text, other values as JSON text,
//! `null` as empty), as the console's key/value secrets expect; any other
//! string (plain text, or JSON that is not an object) is one field named
//! `value`, as is a `SecretBinary`. `Fetched::version` is the VersionId. With
//! `previous: true` and no `AWSPREVIOUS` version yet (a secret never rotated),
//! `<file>.previous` holds the current version.
//!
//! **Errors.** Throttling, 5xx, timeouts and connection failures are retried
//! with [`Backoff`] (the SDK's own retries are off) until the deadline, then
//! reported as unavailable; AccessDenied is denied, ResourceNotFound is not
//! found, a KMS DecryptionFailure says so. Messages name the secret id.
//!
//! **Cost.** Calls are counted per API operation ([`Source::api_calls`]): the
//! sidecar's `/metrics` shows them as `ramsecrets_backend_api_calls_total`, and
//! each batch logs them at debug.
//!
//! **Elsewhere.** The AWS agent's API as the local proxy serves it is in
//! [`proxy`].
//!
//! Values move into [`SecretBytes`] as soon as the SDK hands them over; the
//! SDK's response buffer and its deserialized `String` are not zeroized.

mod address;
mod batch;
mod cap;
mod client;
mod config;
mod drill;
mod errors;
mod pod;
pub(crate) use pod::pod as pod_settings;
mod proxy;
mod value;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_secretsmanager::Client;
use futures::future::BoxFuture;
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

use super::{Error, Result, Source};
use crate::backoff::{Backoff, Gate, Pace};
use crate::config::{Address, Secret};
use crate::secret::Fetched;
use crate::source::batch::Queue;
use crate::source::rotator::Rotator;
pub use address::AwsAddress;
pub(in crate::source) use client::client;
pub(crate) use config::{read_settings, settings, BACKEND, REQUEST_BUDGET};
pub use config::{Aws, AwsVersion, RawAws, AWS_CURRENT, AWS_PREVIOUS};
pub(in crate::source) use drill::paced_call;
pub(in crate::source) use errors::credentials;
pub use errors::sdk_error;
pub(in crate::source) use value::origin;
pub use value::VALUE_FIELD;
// For the fuzz targets (`src/fuzzing.rs`).
#[cfg(feature = "fuzzing")]
pub(crate) use value::{fetched, value_of};

/// API calls in flight at once, per source.
const IN_FLIGHT: usize = 16;

/// An AWS Secrets Manager account and region; the client is built on first use.
pub struct AwsSource {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    settings: Aws,
    client: OnceCell<Client>,
    queue: Mutex<Queue<String>>,
    /// Set once a policy denied BatchGetSecretValue: read one by one from then on.
    batch_denied: AtomicBool,
    calls: Calls,
    permits: Semaphore,
    gate: Gate,
}

/// API calls made, per operation (each attempt counts).
#[derive(Default)]
struct Calls {
    batch_get_secret_value: AtomicU64,
    get_secret_value: AtomicU64,
}

impl AwsSource {
    /// A source named `name`; nothing is read or resolved until the first fetch.
    pub fn new(name: &str, settings: &Aws) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                settings: settings.clone(),
                client: OnceCell::new(),
                queue: Mutex::new(Queue::default()),
                batch_denied: AtomicBool::new(false),
                calls: Calls::default(),
                permits: Semaphore::new(IN_FLIGHT),
                gate: Gate::new(Backoff::default()),
            }),
        }
    }

    async fn fetch_one(&self, secret: &Secret, deadline: Instant) -> Result<Fetched> {
        let Address::AwsSecretsManager(AwsAddress::SecretId {
            id,
            version,
            previous,
        }) = &secret.address
        else {
            return Err(Error::config(format!(
                "source {}: AWS Secrets Manager reads `secret_id` secrets only",
                self.inner.name
            )));
        };
        // The SDK's futures are large (tens of KiB): boxed, so that a fetch
        // waiting for its batch holds a pointer to one, not the space for it;
        // a sidecar waits on every secret's fetch at once (1,000 secrets held
        // 24 MB of such space at the start before this).
        let current = async {
            if version.is_current() && !self.inner.batch_denied.load(Ordering::Relaxed) {
                self.queued(id, deadline).await
            } else {
                Box::pin(async {
                    let client = self.inner.client().await?;
                    self.inner.get(&client, id, version, deadline).await
                })
                .await
            }
        };
        if !previous {
            return current.await;
        }
        let before = Box::pin(async {
            let client = self.inner.client().await?;
            let stage = AwsVersion::Stage(AWS_PREVIOUS.into());
            self.inner.get(&client, id, &stage, deadline).await
        });
        let (current, before) = futures::join!(current, before);
        let mut current = current?;
        let before = match before {
            Ok(b) => b,
            Err(Error::NotFound { .. }) => {
                tracing::info!(source = %self.inner.name, secret_id = %id,
                    "no {AWS_PREVIOUS} version yet: the .previous file holds the current version");
                Fetched {
                    previous: None,
                    ..current.clone()
                }
            }
            Err(e) => return Err(e),
        };
        current.previous = Some(Box::new(before));
        Ok(current)
    }

    /// The SDK client, for calls other than reads (the rotation drill's).
    pub async fn sdk(&self) -> Result<Client> {
        self.inner.client().await
    }
}

impl Inner {
    /// The client, built on first use from the SDK's default chain.
    async fn client(&self) -> Result<Client> {
        client(&self.client, &self.name, &self.settings, |sdk, cap| {
            let config = aws_sdk_secretsmanager::config::Builder::from(sdk).interceptor(cap);
            Client::from_conf(config.build())
        })
        .await
    }
}

impl Source for AwsSource {
    fn rotator(&self, secret: &Secret) -> std::result::Result<Box<dyn Rotator + '_>, String> {
        drill::rotator(self, secret)
    }

    fn fetch<'a>(
        &'a self,
        secret: &'a Secret,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Fetched>> {
        Box::pin(self.fetch_one(secret, deadline))
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
            (
                "BatchGetSecretValue",
                c.batch_get_secret_value.load(Ordering::Relaxed),
            ),
            ("GetSecretValue", c.get_secret_value.load(Ordering::Relaxed)),
        ]
    }
}
