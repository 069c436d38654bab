//! Batching of `parameter` reads: fetches are queued ([`Queue`]); the
//! collector takes the distinct parameters and reads them with
//! GetParameters, [`BATCH`] names a call. One call never holds two
//! selectors of the same name, since an answer names the parameter but not
//! always the selector it answers (moto leaves `Selector` out).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use aws_sdk_ssm::types::Parameter as Answer;
use aws_sdk_ssm::Client;
use futures::future::join_all;
use tokio::time::Instant;

use super::{one_value, Inner, Parameter, SsmSource};
use crate::secret::{Fetched, SecretBytes};
use crate::source::aws::origin;
use crate::source::batch::Queue;
use crate::source::{paced, sdk_error, Error, Result};

/// GetParameters takes at most 10 names.
const BATCH: usize = 10;

impl SsmSource {
    /// Queues `parameter` for the next batch and waits for its answer.
    pub(super) async fn queued(&self, parameter: &Parameter, deadline: Instant) -> Result<Fetched> {
        let inner = self.inner.clone();
        let start = move || drop(tokio::spawn(Inner::collect(inner)));
        let what = parameter.describe();
        Queue::fetch(&self.inner.queue, parameter.clone(), deadline, &what, start).await
    }
}

impl Inner {
    /// Takes what was queued during the window and answers every waiter.
    async fn collect(self: Arc<Self>) {
        let Some(taken) = Queue::take(&self.queue).await else {
            return;
        };
        let wanted = &taken.keys;
        let answers: Vec<Result<Fetched>> = match self.client().await {
            Ok(client) => {
                let calls = calls(wanted);
                let answered =
                    join_all(calls.iter().map(|c| self.call(&client, c, taken.deadline)));
                let mut answered: Vec<(&Parameter, Result<Fetched>)> = calls
                    .iter()
                    .flatten()
                    .copied()
                    .zip(answered.await.into_iter().flatten())
                    .collect();
                // In the order of `wanted`, which the calls do not keep.
                wanted
                    .iter()
                    .map(|p| match answered.iter().position(|(q, _)| *q == p) {
                        Some(i) => answered.swap_remove(i).1,
                        None => Err(Error::unavailable(format!("{}: not read", p.describe()))),
                    })
                    .collect()
            }
            Err(e) => wanted.iter().map(|_| Err(e.clone())).collect(),
        };
        let parameters = wanted.len();
        taken.answer(answers, |p| {
            Error::unavailable(format!("{}: not answered by the batch", p.describe()))
        });
        tracing::debug!(
            source = %self.name,
            parameters,
            get_parameters = self.calls.get_parameters.load(Ordering::Relaxed),
            "ssm calls so far"
        );
    }

    /// Reads up to 10 parameters of distinct names with one GetParameters.
    async fn call(
        &self,
        client: &Client,
        wanted: &[&Parameter],
        deadline: Instant,
    ) -> Vec<Result<Fetched>> {
        let names: Vec<String> = wanted.iter().map(|p| p.selected()).collect();
        let what = format!("GetParameters of {} parameter(s)", names.len());
        let out = paced(&self.gate, deadline, &what, || async {
            let _permit = self.permits.acquire().await.ok();
            self.calls.get_parameters.fetch_add(1, Ordering::Relaxed);
            client
                .get_parameters()
                .set_names(Some(names.clone()))
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| sdk_error(e, &what))
        })
        .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => return wanted.iter().map(|p| Err(e.about(&p.describe()))).collect(),
        };
        let invalid = out.invalid_parameters.unwrap_or_default();
        let mut found = out.parameters.unwrap_or_default();
        wanted
            .iter()
            .zip(&names)
            .map(|(p, selected)| {
                if invalid.contains(selected) {
                    return Err(Error::not_found(format!(
                        "{}: no such parameter in this account and region",
                        p.describe()
                    )));
                }
                let at = found.iter().position(|a| answers(a, p.key()));
                match at.map(|i| found.swap_remove(i)) {
                    Some(Answer {
                        value: Some(value),
                        version,
                        arn,
                        last_modified_date,
                        ..
                    }) => Ok(one_value(
                        SecretBytes::from_string(value),
                        version,
                        origin(arn, last_modified_date),
                    )),
                    Some(_) => Err(Error::data(format!(
                        "{}: the answer has no value",
                        p.describe()
                    ))),
                    None => Err(Error::unavailable(format!(
                        "{}: not in the answer of GetParameters",
                        p.describe()
                    ))),
                }
            })
            .collect()
    }
}

/// Whether an answer is for the parameter named `name` (a name or an ARN).
fn answers(a: &Answer, name: &str) -> bool {
    a.name.as_deref() == Some(name) || a.arn.as_deref() == Some(name)
}

/// The calls that read `wanted`: at most [`BATCH`] each, no name twice in one.
fn calls(wanted: &[Parameter]) -> Vec<Vec<&Parameter>> {
    let mut calls: Vec<Vec<&Parameter>> = Vec::new();
    for p in wanted {
        let free = calls
            .iter_mut()
            .find(|c| c.len() < BATCH && !c.iter().any(|q| q.key() == p.key()));
        match free {
            Some(c) => c.push(p),
            None => calls.push(vec![p]),
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::super::address::Selector;
    use super::*;

    #[test]
    fn ten_names_a_call_never_one_name_twice() {
        let name = |n: usize| Parameter::Name {
            name: format!("p{n}"),
            selector: None,
        };
        let wanted: Vec<Parameter> = (0..25).map(name).collect();
        let sizes: Vec<usize> = calls(&wanted).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let pinned = Parameter::Name {
            name: "p0".into(),
            selector: Some(Selector::Version(2)),
        };
        let wanted = vec![name(0), pinned.clone(), name(1)];
        let split = calls(&wanted);
        assert_eq!(split.len(), 2);
        assert_eq!(split[0], [&name(0), &name(1)]);
        assert_eq!(split[1], [&pinned]);
    }
}
