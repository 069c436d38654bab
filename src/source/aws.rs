//! AWS Secrets Manager, on aws-config and aws-sdk-secretsmanager, with the
//! SDK's default credential chain (environment, profile, web identity, EKS Pod
//! Identity or ECS, IMDS) and an optional region, profile and endpoint.
//!
//! **Batching.** `fetch` stays one secret at a time, but fetches of the current
//! version are queued: the first one starts a collector task that waits a few
//! milliseconds ([`WINDOW`]), takes every id queued by then, drops duplicates,
//! and reads them with BatchGetSecretValue, 20 ids per call. Per-secret
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
//! Values move into [`SecretBytes`] as soon as the SDK hands them over; the
//! SDK's response buffer and its deserialized `String` are not zeroized.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::error::{
    ConnectorError, DisplayErrorContext, ProvideErrorMetadata, SdkError,
};
use aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueOutput;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::SecretValueEntry;
use aws_sdk_secretsmanager::Client;
use futures::future::{join_all, BoxFuture};
use tokio::sync::{oneshot, OnceCell, Semaphore};
use tokio::time::Instant;

use super::{fields_from_json, paced, refused, Error, Result, Source};
use crate::backoff::{self, Backoff, Gate, Pace};
use crate::config::{Address, Aws, AwsVersion, Secret, AWS_CURRENT, AWS_PREVIOUS};
use crate::secret::{Fetched, Fields, SecretBytes};

/// How long the collector waits for more fetches before it calls.
const WINDOW: Duration = Duration::from_millis(3);
/// BatchGetSecretValue takes at most 20 ids in `SecretIdList`.
const BATCH: usize = 20;
/// API calls in flight at once, per source.
const IN_FLIGHT: usize = 16;
/// Pages of one batch call followed, a guard against a looping NextToken.
const MAX_PAGES: usize = 8;
/// The name of the one field of a plain-text or binary secret.
pub const VALUE_FIELD: &str = "value";

/// An AWS Secrets Manager account and region; the client is built on first use.
pub struct AwsSource {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    settings: Aws,
    client: OnceCell<Client>,
    queue: Mutex<Queue>,
    /// Set once a policy denied BatchGetSecretValue: read one by one from then on.
    batch_denied: AtomicBool,
    calls: Calls,
    permits: Semaphore,
    gate: Gate,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiter>,
    collecting: bool,
}

struct Waiter {
    id: String,
    deadline: Instant,
    reply: oneshot::Sender<Result<Fetched>>,
}

/// API calls made, per operation (each attempt counts).
#[derive(Default)]
struct Calls {
    batch_get_secret_value: AtomicU64,
    get_secret_value: AtomicU64,
}

/// A failed call: the error, and the service's error code when it gave one.
struct Failed {
    error: Error,
    code: Option<String>,
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
        let Address::SecretId {
            id,
            version,
            previous,
        } = &secret.address
        else {
            return Err(Error::Config(format!(
                "source {}: AWS Secrets Manager reads `secret_id` secrets only",
                self.inner.name
            )));
        };
        let current = async {
            if version.is_current() && !self.inner.batch_denied.load(Ordering::Relaxed) {
                self.queued(id, deadline).await
            } else {
                let client = self.inner.client().await?;
                self.inner.get(&client, id, version, deadline).await
            }
        };
        if !previous {
            return current.await;
        }
        let before = async {
            let client = self.inner.client().await?;
            let stage = AwsVersion::Stage(AWS_PREVIOUS.into());
            self.inner.get(&client, id, &stage, deadline).await
        };
        let (current, before) = futures::join!(current, before);
        let mut current = current?;
        let before = match before {
            Ok(b) => b,
            Err(Error::NotFound(_)) => {
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

    /// Queues `id` for the next batch and waits for its answer.
    async fn queued(&self, id: &str, deadline: Instant) -> Result<Fetched> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut q = self.inner.lock();
            q.waiting.push(Waiter {
                id: id.to_owned(),
                deadline,
                reply,
            });
            !std::mem::replace(&mut q.collecting, true)
        };
        if start {
            tokio::spawn(Inner::collect(self.inner.clone()));
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Unavailable(format!(
                "secret_id `{id}`: the batch ended without an answer"
            ))),
            Err(_) => Err(Error::Unavailable(format!(
                "secret_id `{id}`: no answer before the deadline"
            ))),
        }
    }
}

impl Source for AwsSource {
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

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client, built on first use from the SDK's default chain.
    async fn client(&self) -> Result<Client> {
        self.client
            .get_or_try_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    // Our Backoff retries, against the caller's deadline.
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_attempt_timeout(Duration::from_secs(30))
                            .build(),
                    );
                if let Some(region) = &self.settings.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(profile) = &self.settings.profile {
                    loader = loader.profile_name(profile);
                }
                let sdk = loader.load().await;
                if sdk.region().is_none() {
                    return Err(Error::Config(format!(
                        "source {}: no AWS region: set `region` in the source, AWS_REGION, or a region in the profile",
                        self.name
                    )));
                }
                let mut config = aws_sdk_secretsmanager::config::Builder::from(&sdk);
                if let Some(endpoint) = &self.settings.endpoint {
                    config = config.endpoint_url(endpoint.as_str());
                }
                tracing::debug!(source = %self.name, region = sdk.region().map_or("none", |r| r.as_ref()), endpoint = self.settings.endpoint.as_ref().map_or("default", |u| u.as_str()), "aws client ready");
                Ok(Client::from_conf(config.build()))
            })
            .await
            .cloned()
    }

    /// Takes what was queued during the window and answers every waiter.
    async fn collect(self: Arc<Self>) {
        tokio::time::sleep(WINDOW).await;
        let waiting = {
            let mut q = self.lock();
            q.collecting = false;
            std::mem::take(&mut q.waiting)
        };
        let Some(deadline) = waiting.iter().map(|w| w.deadline).max() else {
            return;
        };
        let mut ids: Vec<String> = Vec::new();
        for w in &waiting {
            if !ids.contains(&w.id) {
                ids.push(w.id.clone());
            }
        }
        let answers: HashMap<String, Result<Fetched>> = match self.client().await {
            Ok(client) => {
                let chunks = ids.chunks(BATCH).map(|c| self.chunk(&client, c, deadline));
                let answered = join_all(chunks).await;
                ids.iter()
                    .cloned()
                    .zip(answered.into_iter().flatten())
                    .collect()
            }
            Err(e) => ids.iter().map(|id| (id.clone(), Err(e.clone()))).collect(),
        };
        for w in waiting {
            let answer = answers.get(&w.id).cloned().unwrap_or_else(|| {
                Err(Error::Unavailable(format!(
                    "secret_id `{}`: not answered by the batch",
                    w.id
                )))
            });
            // The fetch may have given up at its deadline; nobody is left to tell.
            let _ = w.reply.send(answer);
        }
        tracing::debug!(
            source = %self.name,
            secrets = ids.len(),
            batch_get_secret_value = self.calls.batch_get_secret_value.load(Ordering::Relaxed),
            get_secret_value = self.calls.get_secret_value.load(Ordering::Relaxed),
            "aws calls so far"
        );
    }

    /// Reads up to 20 ids with BatchGetSecretValue; what it does not answer
    /// (unknown to it, or a retryable per-secret error) is read one by one.
    async fn chunk(
        &self,
        client: &Client,
        ids: &[String],
        deadline: Instant,
    ) -> Vec<Result<Fetched>> {
        let mut answers: Vec<Option<Result<Fetched>>> = vec![None; ids.len()];
        let mut next_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let call = format!("BatchGetSecretValue of {} secret(s)", ids.len());
            let out = self
                .gate
                .run(
                    deadline,
                    |f: &Failed| f.error.signal(),
                    |why| Failed {
                        error: refused(&call, why),
                        code: None,
                    },
                    || self.batch_call(client, ids, next_token.clone()),
                )
                .await;
            let out = match out {
                Ok(out) => out,
                Err(f) if f.code.as_deref() == Some("AccessDeniedException") => {
                    self.deny_batch(&f.error);
                    break;
                }
                Err(f) => {
                    for (id, a) in ids.iter().zip(&mut answers).filter(|(_, a)| a.is_none()) {
                        *a = Some(Err(naming(&f.error, id)));
                    }
                    break;
                }
            };
            for entry in out.secret_values.unwrap_or_default() {
                let SecretValueEntry {
                    arn,
                    name,
                    version_id,
                    secret_binary,
                    secret_string,
                    ..
                } = entry;
                let value = value_of(secret_string, secret_binary);
                let matching: Vec<usize> = ids
                    .iter()
                    .enumerate()
                    .filter(|(i, id)| {
                        answers[*i].is_none() && same_secret(id, name.as_deref(), arn.as_deref())
                    })
                    .map(|(i, _)| i)
                    .collect();
                let Some(first) = matching.first() else {
                    continue;
                };
                let fetched = fetched(&what(&ids[*first], None), value, version_id);
                for i in matching {
                    answers[i] = Some(fetched.clone());
                }
            }
            for e in out.errors.unwrap_or_default() {
                let Some(i) = ids
                    .iter()
                    .position(|id| Some(id.as_str()) == e.secret_id.as_deref())
                else {
                    continue;
                };
                let error = by_code(
                    e.error_code.as_deref().unwrap_or("UnknownError"),
                    None,
                    e.message.as_deref().unwrap_or_default(),
                    &what(&ids[i], None),
                );
                // A retryable one is read again by GetSecretValue, with backoff.
                if answers[i].is_none() && !error.retryable() {
                    answers[i] = Some(Err(error));
                }
            }
            next_token = out.next_token;
            if next_token.is_none() || answers.iter().all(Option::is_some) {
                break;
            }
        }
        let current = AwsVersion::Stage(AWS_CURRENT.into());
        let rest = ids.iter().zip(&answers).filter(|(_, a)| a.is_none()).map(|(id, _)| {
            tracing::debug!(source = %self.name, secret_id = %id, "not answered by the batch: reading it alone");
            self.get(client, id, &current, deadline)
        });
        let mut rest = join_all(rest).await.into_iter();
        answers
            .into_iter()
            .map(|a| match a {
                Some(a) => a,
                None => rest.next().unwrap_or_else(|| {
                    Err(Error::Unavailable("batch bookkeeping went wrong".into()))
                }),
            })
            .collect()
    }

    /// Remembers, and says once, that the policy denies the batch call.
    fn deny_batch(&self, error: &Error) {
        if !self.batch_denied.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                source = %self.name,
                error = %error,
                "BatchGetSecretValue is denied by policy: reading each secret with its own \
                 GetSecretValue from now on (N calls per cycle instead of N/20); allow \
                 secretsmanager:BatchGetSecretValue to batch"
            );
        }
    }

    async fn batch_call(
        &self,
        client: &Client,
        ids: &[String],
        next_token: Option<String>,
    ) -> std::result::Result<BatchGetSecretValueOutput, Failed> {
        let _permit = self.permits.acquire().await.ok();
        self.calls
            .batch_get_secret_value
            .fetch_add(1, Ordering::Relaxed);
        client
            .batch_get_secret_value()
            .set_secret_id_list(Some(ids.to_vec()))
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| {
                let what = format!("BatchGetSecretValue of {} secret(s)", ids.len());
                classify(e, &what)
            })
    }

    /// One GetSecretValue, retried until `deadline`.
    async fn get(
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
            fetched(&what, value, out.version_id)
        })
        .await
    }
}

/// How messages name a secret: `secret_id `x``, with its version when pinned.
fn what(id: &str, version: Option<&AwsVersion>) -> String {
    match version {
        Some(v) if v.is_current() => format!("secret_id `{id}`"),
        Some(AwsVersion::Stage(s)) => format!("secret_id `{id}` ({s})"),
        Some(AwsVersion::Id(v)) => format!("secret_id `{id}` (version {v})"),
        None => format!("secret_id `{id}`"),
    }
}

/// A batch's error as one secret's: the same kind, its message led by the id.
fn naming(e: &Error, id: &str) -> Error {
    let named = |m: &str| format!("secret_id `{id}`: {m}");
    match e {
        Error::Denied(m) => Error::Denied(named(m)),
        Error::NotFound(m) => Error::NotFound(named(m)),
        Error::Unavailable(m) => Error::Unavailable(named(m)),
        Error::Throttled {
            detail,
            retry_after,
        } => Error::Throttled {
            detail: named(detail),
            retry_after: *retry_after,
        },
        Error::Data(m) => Error::Data(named(m)),
        Error::Config(m) => Error::Config(named(m)),
    }
}

/// Whether a batch entry named `name` with `arn` answers the requested `id`
/// (a name, a full ARN, or an ARN without its 6-character random suffix).
fn same_secret(id: &str, name: Option<&str>, arn: Option<&str>) -> bool {
    if name == Some(id) || arn == Some(id) {
        return true;
    }
    id.starts_with("arn:")
        && arn
            .and_then(|a| a.strip_prefix(id))
            .is_some_and(|rest| rest.len() == 7 && rest.starts_with('-'))
}

/// A secret's value as the SDK hands it over, moved into [`SecretBytes`] at once.
enum Value {
    Text(SecretBytes),
    Binary(SecretBytes),
    None,
}

fn value_of(string: Option<String>, binary: Option<Blob>) -> Value {
    match (string, binary) {
        (Some(s), _) => Value::Text(SecretBytes::from_string(s)),
        (None, Some(b)) => Value::Binary(SecretBytes::new(b.into_inner())),
        (None, None) => Value::None,
    }
}

/// Fields of a value: a JSON object's members, else one field `value`.
fn fetched(what: &str, value: Value, version_id: Option<String>) -> Result<Fetched> {
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
            return Err(Error::Data(format!(
                "{what}: the version has neither SecretString nor SecretBinary"
            )))
        }
    };
    let mut f = Fetched::fields(fields);
    f.version = version_id;
    f.stored = Some(stored);
    Ok(f)
}

fn one_field(bytes: SecretBytes) -> Fields {
    let mut fields = Fields::new();
    fields.insert(VALUE_FIELD.into(), bytes);
    fields
}

/// Maps a failed SDK call made outside this module; `what` names the call.
pub fn sdk_error<E>(e: SdkError<E>, what: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    classify(e, what).error
}

/// Maps a failed SDK call; `what` names the secret or the batch.
fn classify<E>(e: SdkError<E>, what: &str) -> Failed
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let Some(c) = credentials_error(&e) {
        return Failed {
            error: credentials(c, what),
            code: None,
        };
    }
    let error = match &e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("UnknownError").to_owned();
            let status = s.raw().status().as_u16();
            let retry_after = s
                .raw()
                .headers()
                .get("retry-after")
                .and_then(|v| backoff::parse_retry_after(v, std::time::SystemTime::now()));
            let error = match by_code(
                &code,
                Some(status),
                s.err().message().unwrap_or_default(),
                what,
            ) {
                Error::Throttled { detail, .. } => Error::Throttled {
                    detail,
                    retry_after,
                },
                Error::Unavailable(detail) if status == 503 && retry_after.is_some() => {
                    Error::Throttled {
                        detail,
                        retry_after,
                    }
                }
                other => other,
            };
            return Failed {
                error,
                code: Some(code),
            };
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            Error::Unavailable(format!("{what}: {}", DisplayErrorContext(&e)))
        }
        // A parse error's context may quote the answer, which holds secrets.
        SdkError::ResponseError(_) => {
            Error::Unavailable(format!("{what}: the answer could not be read"))
        }
        SdkError::ConstructionFailure(_) => {
            Error::Config(format!("{what}: {}", DisplayErrorContext(&e)))
        }
        _ => Error::Unavailable(format!("{what}: {}", DisplayErrorContext(&e))),
    };
    Failed { error, code: None }
}

/// Maps an error code of the service (or of one entry of a batch's `Errors`).
fn by_code(code: &str, status: Option<u16>, message: &str, what: &str) -> Error {
    let detail = if message.is_empty() {
        format!("{what}: {code}")
    } else {
        format!("{what}: {code}: {message}")
    };
    match code {
        "ResourceNotFoundException" => Error::NotFound(detail),
        "DecryptionFailure" => Error::Data(format!(
            "{what}: KMS could not decrypt the secret: check that its KMS key exists, is \
             enabled, and lets this role use kms:Decrypt ({code}: {message})"
        )),
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "ExpiredTokenException"
        | "ExpiredToken" => Error::Denied(detail),
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => Error::Throttled {
            detail,
            retry_after: None,
        },
        "InternalServiceError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "RequestTimeout"
        | "RequestTimeoutException" => Error::Unavailable(detail),
        _ => match status {
            Some(429) => Error::Throttled {
                detail,
                retry_after: None,
            },
            Some(500..=599) => Error::Unavailable(detail),
            Some(401 | 403) => Error::Denied(detail),
            _ => Error::Data(detail),
        },
    }
}

/// The credential-chain error inside an SDK error, if that is what failed.
fn credentials_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a CredentialsError> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<CredentialsError>() {
            return Some(c);
        }
        cur = err.source();
    }
    None
}

pub(in crate::source) fn credentials(c: &CredentialsError, what: &str) -> Error {
    let detail = DisplayErrorContext(c);
    match c {
        CredentialsError::CredentialsNotLoaded(_) => Error::Config(format!(
            "{what}: no AWS credentials found: the SDK default chain tried the environment \
             (AWS_ACCESS_KEY_ID), the profile files, web identity (AWS_ROLE_ARN with \
             AWS_WEB_IDENTITY_TOKEN_FILE), the EKS Pod Identity or ECS container endpoint, and \
             IMDS: {detail}"
        )),
        CredentialsError::InvalidConfiguration(_) => Error::Config(format!(
            "{what}: the AWS credential configuration is invalid: {detail}"
        )),
        CredentialsError::ProviderError(_) if !reached(c) => Error::Unavailable(format!(
            "{what}: the AWS credential provider could not be reached: {detail}"
        )),
        CredentialsError::ProviderError(_) => {
            Error::Denied(format!("{what}: AWS credentials were refused: {detail}"))
        }
        _ => Error::Unavailable(format!("{what}: AWS credentials: {detail}")),
    }
}

/// False when a connection or timeout failure is behind a provider error
/// (STS or the container endpoint unreachable): worth retrying.
fn reached(c: &CredentialsError) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(c);
    while let Some(err) = cur {
        if let Some(conn) = err.downcast_ref::<ConnectorError>() {
            if conn.is_io() || conn.is_timeout() {
                return false;
            }
        }
        cur = err.source();
    }
    true
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
        )
        .unwrap();
        assert_eq!(f.fields["user"].expose(), b"app");
        assert_eq!(f.fields["port"].expose(), b"5432");
        assert_eq!(f.fields["on"].expose(), b"true");
        assert_eq!(f.fields["n"].expose(), b"");
        assert_eq!(f.version.as_deref(), Some("v1"));
        assert_eq!(
            f.stored.as_ref().map(SecretBytes::expose),
            Some(br#"{"user":"app","port":5432,"on":true,"n":null}"#.as_slice())
        );
        for plain in ["hunter2", "[1,2]", "\"quoted\"", "{not json", " 42 "] {
            let f = fetched("x", text(plain), None).unwrap();
            assert_eq!(f.fields.len(), 1, "{plain}");
            assert_eq!(f.fields[VALUE_FIELD].expose(), plain.as_bytes());
            assert_eq!(f.stored.unwrap().expose(), plain.as_bytes());
        }
        let f = fetched("x", Value::Binary(SecretBytes::new(vec![0, 255, 10])), None).unwrap();
        assert_eq!(f.fields[VALUE_FIELD].expose(), &[0, 255, 10]);
        let e = fetched("secret_id `a`", Value::None, None).unwrap_err();
        assert!(
            matches!(e, Error::Data(_)) && e.to_string().contains("`a`"),
            "{e}"
        );
    }

    #[test]
    fn batch_entries_match_names_and_arns() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/api-AbCdEf";
        assert!(same_secret("prod/api", Some("prod/api"), Some(arn)));
        assert!(same_secret(arn, Some("prod/api"), Some(arn)));
        let partial = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/api";
        assert!(same_secret(partial, Some("prod/api"), Some(arn)));
        assert!(!same_secret("prod", Some("prod/api"), Some(arn)));
        assert!(!same_secret(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod",
            Some("prod/api"),
            Some(arn)
        ));
    }

    #[test]
    fn error_codes_map_to_exit_kinds() {
        let w = "secret_id `a`";
        assert!(matches!(
            by_code("ResourceNotFoundException", Some(400), "gone", w),
            Error::NotFound(_)
        ));
        assert!(matches!(
            by_code("AccessDeniedException", Some(400), "", w),
            Error::Denied(_)
        ));
        assert!(by_code("ThrottlingException", Some(400), "", w).retryable());
        assert_eq!(
            by_code("ThrottlingException", Some(400), "", w).signal(),
            crate::backoff::Signal::PushedBack(None)
        );
        assert_eq!(
            by_code("Whatever", Some(429), "", w).signal(),
            crate::backoff::Signal::PushedBack(None)
        );
        assert!(by_code("InternalServiceError", Some(500), "", w).retryable());
        assert!(by_code("Whatever", Some(503), "", w).retryable());
        assert!(matches!(
            by_code("InvalidRequestException", Some(400), "", w),
            Error::Data(_)
        ));
        let kms = by_code("DecryptionFailure", Some(400), "cannot decrypt", w);
        assert!(matches!(kms, Error::Data(_)));
        let shown = kms.to_string();
        assert!(
            shown.contains("KMS could not decrypt") && shown.contains("`a`"),
            "{shown}"
        );
    }

    #[test]
    fn missing_credentials_are_a_config_error() {
        let c = CredentialsError::not_loaded("no providers in chain provided credentials");
        let e = credentials(&c, "secret_id `a`");
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        assert!(e.to_string().contains("no AWS credentials found"), "{e}");
        let e = credentials(
            &CredentialsError::provider_error("InvalidIdentityToken"),
            "x",
        );
        assert!(matches!(e, Error::Denied(_)), "{e:?}");
    }
}
