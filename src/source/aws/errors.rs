//! How a failed SDK call becomes an [`Error`]: the service's error code
//! first, then its HTTP status; a credential-chain failure says which
//! credentials were looked for; a parse error never quotes the answer.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::error::{
    ConnectorError, DisplayErrorContext, ProvideErrorMetadata, SdkError,
};

use crate::backoff;
use crate::source::Error;

/// A failed call: the error, and the service's error code when it gave one.
pub(super) struct Failed {
    pub(super) error: Error,
    pub(super) code: Option<String>,
}

/// A batch's error as one secret's: the same kind, its message led by the id.
pub(super) fn naming(e: &Error, id: &str) -> Error {
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
pub(super) fn by_code(code: &str, status: Option<u16>, message: &str, what: &str) -> Error {
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
