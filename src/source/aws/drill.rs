//! How the rotation drill rotates an AWS Secrets Manager secret: by its own
//! multi-step protocol. A secret with
//! a rotation function is rotated by it (`RotateSecret`), and the drill waits
//! until `AWSCURRENT` moved to the new version. Otherwise the drill does what
//! a rotation function does: `PutSecretValue` of a value of the same shape
//! with stage `AWSPENDING`, then `UpdateSecretVersionStage` moves
//! `AWSCURRENT` to it (the service moves `AWSPREVIOUS` to the old version),
//! and `AWSPENDING` is taken off. Undoing moves `AWSCURRENT` back, only while
//! it is still on the drill's version.
//!
//! A rotation that fails or is interrupted half way is taken back
//! ([`AwsRotator::abandon`]): `AWSPENDING` left behind would block every later
//! `RotateSecret`. The new version's id is chosen up front (the request
//! token), so even a `PutSecretValue` cut short can be found and cleaned up.

use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::Client;
use futures::future::BoxFuture;
use rand::RngCore;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{AwsAddress, AwsSource};
use crate::backoff::{Backoff, Gate};
use crate::config::{Address, Secret, AWS_CURRENT};
use crate::secret::SecretBytes;
use crate::source::rotator::shape::{self, Set};
use crate::source::rotator::{until_interrupted, Error, Job, Restored, Rotated, Rotator, Undo};
use crate::source::{self, sdk_error};

const PENDING: &str = "AWSPENDING";
/// The time given to taking back a rotation that failed or was interrupted.
const CLEANUP_BUDGET: Duration = Duration::from_secs(30);

/// One AWS secret to rotate.
struct AwsRotator<'a> {
    source: &'a AwsSource,
    id: String,
    gate: Gate,
}

/// How to put the old value back: the versions `AWSCURRENT` was moved between.
struct Moved {
    /// The version that was current.
    old: String,
    /// The version made current.
    new: String,
}

/// A value as Secrets Manager stores it.
enum Stored {
    Text(SecretBytes),
    Binary(SecretBytes),
}

/// The rotator of `secret`, read from `source`; the error says why it
/// cannot be drilled.
pub(super) fn rotator<'a>(
    source: &'a AwsSource,
    secret: &Secret,
) -> Result<Box<dyn Rotator + 'a>, String> {
    match &secret.address {
        Address::AwsSecretsManager(AwsAddress::SecretId { id, version, .. })
            if version.is_current() =>
        {
            Ok(Box::new(AwsRotator {
                source,
                id: id.clone(),
                gate: Gate::new(Backoff::default()),
            }))
        }
        Address::AwsSecretsManager(_) => {
            Err("it pins a version: rotating AWSCURRENT would never reach the app".into())
        }
        _ => Err("AWS Secrets Manager holds `secret_id` secrets only".into()),
    }
}

impl Rotator for AwsRotator<'_> {
    fn describe(&self) -> &'static str {
        "aws secrets manager"
    }

    fn rotate<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Rotated, Error>> {
        Box::pin(self.staged(job.sets, job.deadline, job.interrupt))
    }

    fn restore<'a>(
        &'a self,
        undo: &'a Undo,
        deadline: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<Restored, Error>> {
        Box::pin(async move {
            let Moved { old, new } = undo.get()?;
            self.moved_back(old, new, deadline).await
        })
    }
}

impl AwsRotator<'_> {
    /// `op` of this secret, as errors name it. Taking a failed rotation back
    /// paces its calls with a gate of its own, not held shut by the failure
    /// it cleans up after.
    fn what(&self, op: &str) -> String {
        format!("{op} of secret_id `{}`", self.id)
    }

    /// Rotates: by the secret's rotation function when it has one, else by
    /// the staged protocol. A failure or an interrupt after the new version
    /// was asked for takes the rotation back, and the error says how.
    async fn staged(
        &self,
        sets: &[Set],
        deadline: tokio::time::Instant,
        interrupt: &CancellationToken,
    ) -> Result<Rotated, Error> {
        let client = self.source.sdk().await?;
        let id = self.id.as_str();
        let described = paced_call(&self.gate, &self.what("DescribeSecret"), deadline, || {
            client.describe_secret().secret_id(id).send()
        })
        .await?;
        let old = current(described.version_ids_to_stages()).ok_or_else(|| {
            Error::Source(source::Error::not_found(format!(
                "secret_id `{id}` has no {AWS_CURRENT} version"
            )))
        })?;
        let has_function = described.rotation_enabled() == Some(true)
            && described
                .rotation_lambda_arn()
                .is_some_and(|a| !a.is_empty());
        if has_function {
            if !sets.is_empty() {
                return Err(Error::Usage(format!(
                    "secret_id `{id}` has a rotation function, which makes the new value: --set does not apply"
                )));
            }
            return self.by_function(&client, old, deadline, interrupt).await;
        }
        let got = paced_call(&self.gate, &self.what("GetSecretValue"), deadline, || {
            client
                .get_secret_value()
                .secret_id(id)
                .version_id(&old)
                .send()
        })
        .await?;
        let stored = match (got.secret_string, got.secret_binary) {
            (Some(s), _) => Stored::Text(SecretBytes::from_string(s)),
            (None, Some(b)) => Stored::Binary(SecretBytes::new(b.into_inner())),
            (None, None) => {
                return Err(Error::Source(source::Error::data(format!(
                    "secret_id `{id}`: the current version has no value"
                ))))
            }
        };
        let (new_value, fields) = rotated(&stored, sets)?;
        let pending = version_token();
        let put = client
            .put_secret_value()
            .secret_id(id)
            .client_request_token(&pending)
            .version_stages(PENDING);
        let put = match new_value {
            Stored::Text(t) => {
                let text = t.expose_str().unwrap_or_default().to_owned();
                put.secret_string(text)
            }
            Stored::Binary(b) => put.secret_binary(Blob::new(b.expose().to_vec())),
        };
        let staged = async {
            paced_call(&self.gate, &self.what("PutSecretValue"), deadline, || {
                put.clone().send()
            })
            .await?;
            let pending_at = Instant::now();
            self.update_stage(
                &self.gate,
                &client,
                AWS_CURRENT,
                &old,
                Some(&pending),
                deadline,
            )
            .await?;
            Ok::<_, Error>((pending_at, Instant::now()))
        };
        let (pending_at, written) = match until_interrupted(staged, interrupt).await {
            Ok(times) => times,
            Err(e) => return Err(self.abandon(&client, &old, &pending, true, e).await),
        };
        let removed = self
            .update_stage(&self.gate, &client, PENDING, &pending, None, deadline)
            .await;
        if let Err(e) = removed {
            tracing::warn!(secret_id = id, error = %e, "{PENDING} is left on version {pending}: {}", remove_hint(id, &pending));
        }
        Ok(Rotated {
            action: "AWSPENDING -> AWSCURRENT",
            from: Some(old.clone()),
            to: Some(pending.clone()),
            invented: shape::invented(&fields, sets),
            fields,
            steps: vec![("AWSPENDING written", pending_at)],
            written,
            undo: Some(Undo::new(Moved { old, new: pending })),
        })
    }

    /// `RotateSecret`, then waits until `AWSCURRENT` is on the new version.
    async fn by_function(
        &self,
        client: &Client,
        old: String,
        deadline: tokio::time::Instant,
        interrupt: &CancellationToken,
    ) -> Result<Rotated, Error> {
        let id = self.id.as_str();
        let new = version_token();
        let asked = Instant::now();
        let rotation = async {
            paced_call(&self.gate, &self.what("RotateSecret"), deadline, || {
                client
                    .rotate_secret()
                    .secret_id(id)
                    .client_request_token(&new)
                    .rotate_immediately(true)
                    .send()
            })
            .await?;
            loop {
                let d = paced_call(&self.gate, &self.what("DescribeSecret"), deadline, || {
                    client.describe_secret().secret_id(id).send()
                })
                .await?;
                if current(d.version_ids_to_stages()).as_deref() == Some(new.as_str()) {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::Source(source::Error::unavailable(format!(
                        "secret_id `{id}`: the rotation function did not make version {new} current"
                    ))));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        if let Err(e) = until_interrupted(rotation, interrupt).await {
            // The function's value is real: AWSCURRENT is never moved back over it.
            return Err(self.abandon(client, &old, &new, false, e).await);
        }
        Ok(Rotated {
            action: "RotateSecret",
            from: Some(old.clone()),
            to: Some(new.clone()),
            fields: Vec::new(),
            invented: false,
            steps: vec![("RotateSecret called", asked)],
            written: Instant::now(),
            undo: Some(Undo::new(Moved { old, new })),
        })
    }

    /// `UpdateSecretVersionStage`: `stage` off version `from`, and onto
    /// version `to` when given.
    async fn update_stage(
        &self,
        gate: &Gate,
        client: &Client,
        stage: &str,
        from: &str,
        to: Option<&str>,
        deadline: tokio::time::Instant,
    ) -> Result<(), Error> {
        let id = self.id.as_str();
        paced_call(
            gate,
            &self.what("UpdateSecretVersionStage"),
            deadline,
            || {
                client
                    .update_secret_version_stage()
                    .secret_id(id)
                    .version_stage(stage)
                    .remove_from_version_id(from)
                    .set_move_to_version_id(to.map(str::to_owned))
                    .send()
            },
        )
        .await
        .map(|_| ())
    }

    /// Takes back a rotation to version `new` that failed with `failure`:
    /// `AWSCURRENT` back on `old` if it reached `new` and `current_back`
    /// (the drill's own value), and `AWSPENDING` off `new`. Returns the
    /// failure, saying what was done.
    async fn abandon(
        &self,
        client: &Client,
        old: &str,
        new: &str,
        current_back: bool,
        failure: Error,
    ) -> Error {
        let id = self.id.as_str();
        let deadline = tokio::time::Instant::now() + CLEANUP_BUDGET;
        let gate = Gate::new(Backoff::default());
        let described = paced_call(&gate, &self.what("DescribeSecret"), deadline, || {
            client.describe_secret().secret_id(id).send()
        })
        .await;
        let stages = match described {
            Ok(d) => d
                .version_ids_to_stages()
                .and_then(|m| m.get(new))
                .cloned()
                .unwrap_or_default(),
            Err(e) => {
                return failure.with_cleanup(format!(
                    "{PENDING} may be left on version {new} (DescribeSecret failed: {e}): {}",
                    remove_hint(id, new)
                ))
            }
        };
        let on = |stage: &str| stages.iter().any(|s| s == stage);
        let mut done = Vec::new();
        if current_back && on(AWS_CURRENT) {
            done.push(
                match self
                    .update_stage(&gate, client, AWS_CURRENT, new, Some(old), deadline)
                    .await
                {
                    Ok(()) => format!("{AWS_CURRENT} moved back to version {old}"),
                    Err(e) => format!("{AWS_CURRENT} is left on version {new}: {e}"),
                },
            );
        }
        if on(PENDING) {
            let removed = self
                .update_stage(&gate, client, PENDING, new, None, deadline)
                .await;
            done.push(match removed {
                Ok(_) => format!("{PENDING} removed from version {new}"),
                Err(e) => format!(
                    "{PENDING} is left on version {new} ({e}): {}",
                    remove_hint(id, new)
                ),
            });
        }
        if done.is_empty() {
            done.push(format!("no {PENDING} was left"));
        }
        failure.with_cleanup(done.join("; "))
    }

    /// Moves `AWSCURRENT` back from `new` to `old`, unless a later rotation
    /// moved it on from `new` meanwhile.
    async fn moved_back(
        &self,
        old: &str,
        new: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Restored, Error> {
        let client = self.source.sdk().await?;
        let id = self.id.as_str();
        let d = paced_call(&self.gate, &self.what("DescribeSecret"), deadline, || {
            client.describe_secret().secret_id(id).send()
        })
        .await?;
        match current(d.version_ids_to_stages()) {
            Some(now) if now == new => {
                self.update_stage(&self.gate, &client, AWS_CURRENT, new, Some(old), deadline).await?;
                Ok(Restored::Done(format!(
                    "{AWS_CURRENT} moved back to version {old}"
                )))
            }
            now => Ok(Restored::Left(format!(
                "{AWS_CURRENT} is on version {}, not on the drill's version {new}: a rotation after the drill started moved it; left as it is",
                now.as_deref().unwrap_or("(none)")
            ))),
        }
    }
}

/// Runs the AWS SDK `call` (of any service) with backoff paced by `gate`
/// until `deadline`, `what` naming it in errors.
pub(in crate::source) async fn paced_call<T, E, F, Fut>(
    gate: &Gate,
    what: &str,
    deadline: tokio::time::Instant,
    call: F,
) -> Result<T, Error>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E>>>,
{
    Ok(source::paced(gate, deadline, what, || async {
        call().await.map_err(|e| sdk_error(e, what))
    })
    .await?)
}

/// A fresh version id, in the UUID form Secrets Manager uses: given as the
/// request token, it is the new version's id before the call returns.
fn version_token() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The command that takes `AWSPENDING` off a version by hand.
fn remove_hint(id: &str, version: &str) -> String {
    format!("remove it with `aws secretsmanager update-secret-version-stage --secret-id {id} --version-stage {PENDING} --remove-from-version-id {version}`")
}

/// The version that has `AWSCURRENT`.
fn current(stages: Option<&std::collections::HashMap<String, Vec<String>>>) -> Option<String> {
    stages?
        .iter()
        .find(|(_, s)| s.iter().any(|s| s == AWS_CURRENT))
        .map(|(v, _)| v.clone())
}

/// A new value of the same shape: a JSON object's fields as KV's, a plain
/// string as one field named `value`, binary as random bytes of its length.
fn rotated(old: &Stored, sets: &[Set]) -> Result<(Stored, Vec<String>), Error> {
    let text = match old {
        Stored::Binary(b) => {
            if !sets.is_empty() {
                return Err(Error::Usage(
                    "--set does not apply to a SecretBinary".into(),
                ));
            }
            let mut fresh = vec![0u8; b.len().max(32)];
            rand::thread_rng().fill_bytes(&mut fresh);
            return Ok((
                Stored::Binary(SecretBytes::new(fresh)),
                vec!["SecretBinary".into()],
            ));
        }
        Stored::Text(t) => t.expose_str().unwrap_or_default(),
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => {
            let result = shape::rotate_fields(&map, sets).map_err(Error::Usage);
            shape::wipe(&mut Value::Object(map));
            let (new, fields) = result?;
            let mut new = Value::Object(new);
            let bytes = shape::to_bytes(&new);
            shape::wipe(&mut new);
            return Ok((Stored::Text(bytes), fields));
        }
        Ok(mut other) => shape::wipe(&mut other),
        Err(_) => {}
    }
    let bytes = shape::one_value(text, sets).map_err(Error::Usage)?;
    Ok((Stored::Text(bytes), vec![source::VALUE_FIELD.into()]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn current_is_the_version_with_the_stage() {
        let mut m = HashMap::new();
        m.insert("v1".to_owned(), vec!["AWSPREVIOUS".to_owned()]);
        m.insert(
            "v2".to_owned(),
            vec!["AWSCURRENT".to_owned(), "x".to_owned()],
        );
        assert_eq!(current(Some(&m)).as_deref(), Some("v2"));
        assert_eq!(current(None), None);
    }

    #[test]
    fn values_keep_their_shape() {
        let json = Stored::Text(SecretBytes::copy_from(
            r#"{"username":"app","password":"p4ssw0rd-Old"}"#,
        ));
        let (new, fields) = rotated(&json, &[]).unwrap();
        assert_eq!(fields, vec!["password"]);
        let Stored::Text(t) = new else { panic!("text") };
        let v: Value = serde_json::from_slice(t.expose()).unwrap();
        assert_eq!(v["username"], "app");
        assert_eq!(v["password"].as_str().unwrap().len(), 12);
        let plain = Stored::Text(SecretBytes::copy_from("abc123"));
        let (new, _) = rotated(&plain, &[]).unwrap();
        let Stored::Text(t) = new else { panic!("text") };
        assert_eq!(t.len(), 6);
        assert_ne!(t.expose(), b"abc123");
        let set = vec![shape::parse_set("value=given").unwrap()];
        let (new, _) = rotated(&plain, &set).unwrap();
        let Stored::Text(t) = new else { panic!("text") };
        assert_eq!(t.expose(), b"given");
        let bad = vec![shape::parse_set("password=x").unwrap()];
        assert!(rotated(&plain, &bad).is_err());
        let bin = Stored::Binary(SecretBytes::new(vec![1; 40]));
        let (new, _) = rotated(&bin, &[]).unwrap();
        let Stored::Binary(b) = new else {
            panic!("binary")
        };
        assert_eq!(b.len(), 40);
    }
}
