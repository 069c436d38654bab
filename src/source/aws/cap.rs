//! The cap on an answer's size (`max_answer_bytes`) of Secrets Manager and
//! Parameter Store: an SDK interceptor that
//! refuses an answer whose `Content-Length` is over it and counts one without
//! a length as it streams in, so a huge answer (a misbehaving endpoint or
//! emulator; the service keeps secrets under 64 KiB) is refused before it
//! fills the sidecar's memory.

use std::pin::Pin;
use std::task::{Context, Poll};

use aws_sdk_secretsmanager::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeDeserializationInterceptorContextRef,
};
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::Frame;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An answer over the cap, in an SDK error's causes.
#[derive(Debug, thiserror::Error)]
#[error("the answer is larger than {0} bytes")]
pub(super) struct TooBig(pub(super) usize);

impl TooBig {
    /// The cap `e` (an SDK error) was refused by, if it was.
    pub(super) fn within(e: &(dyn std::error::Error + 'static)) -> Option<usize> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(TooBig(max)) = err.downcast_ref::<TooBig>() {
                return Some(*max);
            }
            cur = err.source();
        }
        None
    }
}

/// Refuses answers over `max` bytes.
#[derive(Debug)]
pub(in crate::source) struct AnswerCap {
    pub(in crate::source) max: usize,
}

impl Intercept for AnswerCap {
    fn name(&self) -> &'static str {
        "AnswerCap"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match context.response().body().content_length() {
            Some(length) if length > self.max as u64 => Err(Box::new(TooBig(self.max))),
            _ => Ok(()),
        }
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.response_mut().take_body();
        *context.response_mut().body_mut() = SdkBody::from_body_1_x(Counted {
            body,
            left: self.max,
            max: self.max,
        });
        Ok(())
    }
}

/// A body that fails with [`TooBig`] once more than `max` bytes came in.
struct Counted {
    body: SdkBody,
    left: usize,
    max: usize,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let size = frame.data_ref().map_or(0, Bytes::len);
        match self.left.checked_sub(size) {
            Some(left) => {
                self.left = left;
                Poll::Ready(Some(Ok(frame)))
            }
            None => Poll::Ready(Some(Err(Box::new(TooBig(self.max))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fake::big_answer;
    use aws_sdk_secretsmanager::config::retry::RetryConfig;
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_secretsmanager::Client;

    #[tokio::test]
    async fn an_answer_over_max_answer_bytes_is_refused_naming_the_secret() {
        // A Content-Length over the cap, and no length at all.
        let heads = [
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 65536\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nConnection: close\r\n\r\n",
        ];
        for head in heads {
            let port = big_answer(head, 64 << 10);
            let config = aws_sdk_secretsmanager::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("eu-west-1"))
                .credentials_provider(Credentials::new("AKIDTEST", "test", None, None, "test"))
                .endpoint_url(format!("http://127.0.0.1:{port}"))
                .http_client(crate::tls::aws_http_client())
                .retry_config(RetryConfig::disabled())
                .interceptor(AnswerCap { max: 1024 })
                .build();
            let e = Client::from_conf(config)
                .get_secret_value()
                .secret_id("prod/api")
                .send()
                .await
                .unwrap_err();
            let error = super::super::errors::classify(e, "secret_id `prod/api`").error;
            assert!(
                error.to_string().contains(
                    "secret_id `prod/api`: the answer is larger than max_answer_bytes (1024 bytes)"
                ),
                "{error}"
            );
            assert!(!error.retryable(), "{error}");
        }
    }
}
