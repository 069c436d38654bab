//! The SDK client of a source, and the SDK config Parameter Store shares:
//! built on first use from the SDK's default chain with the source's region,
//! profile and endpoint, with the SDK's own
//! retries off (the source's [`Gate`](crate::engine::backoff::Gate) retries against
//! the caller's deadline) and answers capped at `max_answer_bytes`.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::Client;

use super::cap::AnswerCap;
use super::Inner;
use crate::config::Aws;
use crate::source::{Error, Result};

impl Inner {
    /// The client, built on first use from the SDK's default chain.
    pub(super) async fn client(&self) -> Result<Client> {
        self.client
            .get_or_try_init(|| async {
                let sdk = sdk_config(&self.name, &self.settings).await?;
                let mut config =
                    aws_sdk_secretsmanager::config::Builder::from(&sdk).interceptor(AnswerCap {
                        max: self.settings.max_answer_bytes,
                    });
                if let Some(endpoint) = &self.settings.endpoint {
                    config = config.endpoint_url(endpoint.as_str());
                }
                Ok(Client::from_conf(config.build()))
            })
            .await
            .cloned()
    }
}

/// The SDK config of the source `name` (Secrets Manager or Parameter Store):
/// the default chain with its region and profile, our timeouts, no retries.
pub(in crate::source) async fn sdk_config(name: &str, settings: &Aws) -> Result<SdkConfig> {
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
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(Error::config(format!(
            "source {name}: no AWS region: set `region` in the source, AWS_REGION, or a region in the profile"
        )));
    }
    tracing::debug!(source = %name, region = sdk.region().map_or("none", |r| r.as_ref()), endpoint = settings.endpoint.as_ref().map_or("default", |u| u.as_str()), "aws client ready");
    Ok(sdk)
}
