//! The SDK client of an AWS source (Secrets Manager, Parameter Store), one
//! home for both SDKs: built on first use from the SDK's default chain with
//! the source's region, profile and endpoint, with the SDK's own
//! retries off (the source's [`Gate`](crate::backoff::Gate) retries against
//! the caller's deadline) and answers capped at `max_answer_bytes`.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio::sync::OnceCell;

use super::cap::AnswerCap;
use crate::config::Aws;
use crate::source::{Error, Result};

/// The client of the source `name`, built once into `cell` on first use:
/// `build` makes the SDK's client from the SDK config and the answer cap (as
/// `Client::from_conf(Builder::from(sdk).interceptor(cap).build())`).
pub(in crate::source) async fn client<C: Clone>(
    cell: &OnceCell<C>,
    name: &str,
    settings: &Aws,
    build: impl FnOnce(&SdkConfig, AnswerCap) -> C,
) -> Result<C> {
    cell.get_or_try_init(|| async {
        let sdk = sdk_config(name, settings).await?;
        Ok(build(
            &sdk,
            AnswerCap {
                max: settings.max_answer_bytes,
            },
        ))
    })
    .await
    .cloned()
}

/// The SDK config of the source `name`: the default chain with its region,
/// profile and endpoint (set in code, so it wins over `AWS_ENDPOINT_URL*`,
/// as on the client), our timeouts, no retries.
async fn sdk_config(name: &str, settings: &Aws) -> Result<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(crate::tls::aws_http_client())
        // Our Backoff retries, against the caller's deadline.
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &settings.endpoint {
        loader = loader.endpoint_url(endpoint.as_str());
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(Error::config(format!(
            "source {name}: no AWS region: set `region` in the source, AWS_REGION, or a region in the profile"
        )));
    }
    tracing::debug!(source = %name, region = sdk.region().map_or("none", |r| r.as_ref()), endpoint = settings.endpoint.as_ref().map_or("default", |u| u.as_str()), "aws client ready");
    Ok(sdk)
}
