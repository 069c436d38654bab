//! Batching: fetches of the current version are queued ([`Queue`]); the
//! collector takes the distinct ids and reads them with
//! BatchGetSecretValue, [`BATCH`] ids per call. What a batch does not answer
//! (unknown to it, or a retryable per-secret error) is read alone; a policy
//! that denies the batch call turns batching off for the source.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueOutput;
use aws_sdk_secretsmanager::types::SecretValueEntry;
use aws_sdk_secretsmanager::Client;
use futures::future::join_all;
use tokio::time::Instant;

use super::errors::{by_code, classify, Failed};
use super::value::{fetched, origin, value_of, what};
use super::{AwsSource, Inner};
use crate::config::{AwsVersion, AWS_CURRENT};
use crate::secret::Fetched;
use crate::source::batch::Queue;
use crate::source::{refused, Error, Result};

/// BatchGetSecretValue takes at most 20 ids in `SecretIdList`.
const BATCH: usize = 20;
/// Pages of one batch call followed, a guard against a looping NextToken.
const MAX_PAGES: usize = 8;

impl AwsSource {
    /// Queues `id` for the next batch and waits for its answer.
    pub(super) async fn queued(&self, id: &str, deadline: Instant) -> Result<Fetched> {
        let inner = self.inner.clone();
        let start = move || drop(tokio::spawn(Inner::collect(inner)));
        Queue::fetch(
            &self.inner.queue,
            id.to_owned(),
            deadline,
            &what(id, None),
            start,
        )
        .await
    }
}

impl Inner {
    /// Takes what was queued during the window and answers every waiter.
    async fn collect(self: Arc<Self>) {
        let Some(taken) = Queue::take(&self.queue).await else {
            return;
        };
        let ids = &taken.keys;
        let answers: Vec<Result<Fetched>> = match self.client().await {
            Ok(client) => {
                let chunks = ids
                    .chunks(BATCH)
                    .map(|c| self.chunk(&client, c, taken.deadline));
                join_all(chunks).await.into_iter().flatten().collect()
            }
            Err(e) => ids.iter().map(|_| Err(e.clone())).collect(),
        };
        let secrets = ids.len();
        taken.answer(answers, |id| {
            Error::unavailable(format!("secret_id `{id}`: not answered by the batch"))
        });
        tracing::debug!(
            source = %self.name,
            secrets,
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
                        *a = Some(Err(f.error.about(&what(id, None))));
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
                    created_date,
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
                let origin = origin(arn, created_date);
                let fetched = fetched(&what(&ids[*first], None), value, version_id, origin);
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
                None => rest
                    .next()
                    .unwrap_or_else(|| Err(Error::unavailable("batch bookkeeping went wrong"))),
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
#[cfg(test)]
mod tests {
    use super::*;

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
}
