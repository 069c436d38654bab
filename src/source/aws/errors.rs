//! How a failed SDK call becomes an [`Error`]: the service's error code
//! first, then its HTTP status; a credential-chain failure says which
//! credentials were looked for; a parse error never quotes the answer; an
//! answer over `max_answer_bytes` is refused as bad data, not retried.

use aws_credential_types::provider::error::CredentialsError;
use std::time::Duration;

use aws_sdk_secretsmanager::error::{ConnectorError, ProvideErrorMetadata, SdkError};

use super::cap::TooBig;
use crate::backoff;
use crate::source::{Cause, Error, Kind};

/// A failed call: the error, and the service's error code when it gave one.
pub(super) struct Failed {
    pub(super) error: Error,
    pub(super) code: Option<String>,
}

/// Maps a failed SDK call made outside this module; `what` names the call.
pub fn sdk_error<E>(e: SdkError<E>, what: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    classify(e, what).error
}

/// Maps a failed SDK call; `what` names the secret or the batch.
pub(super) fn classify<E>(e: SdkError<E>, what: &str) -> Failed
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let Some(max) = TooBig::within(&e) {
        return Failed {
            error: crate::source::too_big(what, max),
            code: None,
        };
    }
    if let Some(c) = credentials_error(&e) {
        return Failed {
            error: credentials(c, what).because(Cause::call(e)),
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
            let message = s.err().message().unwrap_or_default();
            let error = by_code(&code, Some(status), retry_after, message, what);
            return Failed {
                error,
                code: Some(code),
            };
        }
        // A parse error's context may quote the answer, which holds secrets.
        SdkError::ResponseError(_) => {
            return Failed {
                error: Error::unavailable(format!("{what}: the answer could not be read")),
                code: None,
            }
        }
        SdkError::ConstructionFailure(_) => Error::config(what),
        _ => Error::unavailable(what),
    };
    Failed {
        error: error.because(Cause::call(e)),
        code: None,
    }
}

/// Maps an error code of the service (or of one entry of a batch's
/// `Errors`, which has no status); a code it does not know goes by the
/// status, as every HTTP backend's does ([`Error::from_status`]).
pub(super) fn by_code(
    code: &str,
    status: Option<u16>,
    retry_after: Option<Duration>,
    message: &str,
    what: &str,
) -> Error {
    let kind = match code {
        "ResourceNotFoundException" => Kind::NotFound,
        "DecryptionFailure" => {
            return Error::data(format!(
                "{what}: KMS could not decrypt the secret: check that its KMS key exists, is \
                 enabled, and lets this role use kms:Decrypt"
            ))
            .because(service(code, message))
        }
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "ExpiredTokenException"
        | "ExpiredToken" => Kind::Denied,
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => Kind::Throttled,
        "InternalServiceError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "RequestTimeout"
        | "RequestTimeoutException" => Kind::Unavailable,
        _ => status.map_or(Kind::Data, |s| Kind::of_status(s, retry_after.is_some())),
    };
    // A 503 with `Retry-After` asks to slow down, whatever its code says.
    let kind = match (kind, status) {
        (Kind::Unavailable, Some(503)) if retry_after.is_some() => Kind::Throttled,
        (kind, _) => kind,
    };
    match kind {
        Kind::Throttled => Error::throttled(what, retry_after),
        kind => Error::new(kind, what),
    }
    .because(service(code, message))
}

fn service(code: &str, message: &str) -> Cause {
    Cause::Service {
        code: code.to_owned(),
        message: message.to_owned(),
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

/// What a failure of the credential chain means, and what to do about it;
/// the caller adds the error itself as the cause.
pub(in crate::source) fn credentials(c: &CredentialsError, what: &str) -> Error {
    match c {
        CredentialsError::CredentialsNotLoaded(_) => Error::config(format!(
            "{what}: no AWS credentials found: the SDK default chain tried the environment \
             (AWS_ACCESS_KEY_ID), the profile files, web identity (AWS_ROLE_ARN with \
             AWS_WEB_IDENTITY_TOKEN_FILE), the EKS Pod Identity or ECS container endpoint, and \
             IMDS"
        )),
        CredentialsError::InvalidConfiguration(_) => Error::config(format!(
            "{what}: the AWS credential configuration is invalid"
        )),
        CredentialsError::ProviderError(_) if !reached(c) => Error::unavailable(format!(
            "{what}: the AWS credential provider could not be reached"
        )),
        CredentialsError::ProviderError(_) => {
            Error::denied(format!("{what}: AWS credentials were refused"))
        }
        _ => Error::unavailable(format!("{what}: AWS credentials")),
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
    use crate::backoff::Signal;

    #[test]
    fn error_codes_map_to_exit_kinds() {
        let w = "secret_id `a`";
        let code = |code, status| by_code(code, Some(status), None, "", w);
        assert!(matches!(
            by_code("ResourceNotFoundException", Some(400), None, "gone", w),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            code("AccessDeniedException", 400),
            Error::Denied { .. }
        ));
        assert!(code("ThrottlingException", 400).retryable());
        assert_eq!(
            code("ThrottlingException", 400).signal(),
            Signal::PushedBack(None)
        );
        assert_eq!(code("Whatever", 429).signal(), Signal::PushedBack(None));
        assert!(code("InternalServiceError", 500).retryable());
        assert!(code("Whatever", 503).retryable());
        assert!(matches!(
            code("InvalidRequestException", 400),
            Error::Data { .. }
        ));
        // A batch entry's error has no status: an unknown code is bad data.
        let entry = by_code("Whatever", None, None, "", w);
        assert!(matches!(entry, Error::Data { .. }), "{entry}");
    }

    #[test]
    fn unknown_codes_go_by_the_shared_status_mapping() {
        let two = Some(Duration::from_secs(2));
        for status in [401, 403, 404, 409, 429, 500, 503] {
            let e = by_code("Whatever", Some(status), None, "", "x");
            assert_eq!(e.kind(), Kind::of_status(status, false), "{status}");
        }
        let e = by_code("Whatever", Some(503), two, "", "x");
        assert_eq!(e.signal(), Signal::PushedBack(two));
        // A known code of an outage, sent as a 503 with Retry-After, asks to slow down.
        let e = by_code("ServiceUnavailableException", Some(503), two, "", "x");
        assert_eq!(e.signal(), Signal::PushedBack(two));
    }

    #[test]
    fn a_service_error_keeps_its_code_as_the_cause() {
        let kms = by_code(
            "DecryptionFailure",
            Some(400),
            None,
            "cannot decrypt",
            "secret_id `a`",
        );
        assert!(matches!(kms, Error::Data { .. }));
        assert_eq!(
            kms.to_string(),
            "bad data: secret_id `a`: KMS could not decrypt the secret: check that its KMS \
             key exists, is enabled, and lets this role use kms:Decrypt: DecryptionFailure: \
             cannot decrypt"
        );
        let cause = std::error::Error::source(&kms).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("DecryptionFailure: cannot decrypt"));
    }

    #[test]
    fn missing_credentials_are_a_config_error() {
        let c = CredentialsError::not_loaded("no providers in chain provided credentials");
        let e = credentials(&c, "secret_id `a`").because(Cause::call(c));
        assert!(matches!(e, Error::Config { .. }), "{e:?}");
        let shown = e.to_string();
        assert!(shown.contains("no AWS credentials found"), "{shown}");
        assert!(
            shown.ends_with("no providers in chain provided credentials"),
            "{shown}"
        );
        let e = credentials(
            &CredentialsError::provider_error("InvalidIdentityToken"),
            "x",
        );
        assert!(matches!(e, Error::Denied { .. }), "{e:?}");
    }
}
