//! The proxy's error answers, in the shape each API's clients parse: Vault's
//! `{"errors":["…"]}`, and for the AWS Secrets Manager Agent API the JSON 1.1
//! error `{"__type":"…","message":"…"}` that the AWS agent passes on from the
//! service. Messages say what to do; they name ids and paths, never values.

use serde_json::json;

/// `: the proxy only reads; to log in, run `…` at Vault itself`, or nothing
/// without a Vault login to name.
fn to_log_in(logins: &[String]) -> String {
    if logins.is_empty() {
        return String::new();
    }
    let commands: Vec<String> = logins.iter().map(|c| format!("`{c}`")).collect();
    format!(
        "; the proxy only reads: to log in, run {} at Vault itself",
        commands.join(" or ")
    )
}

/// The shape of a request's error answer: a list of wire protocols, not of
/// backends (Parameter Store's extension answers in the AWS shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// The AWS Secrets Manager Agent API.
    Aws,
    /// Vault's read API.
    Vault,
}

/// A request the proxy does not answer with a secret.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// The AWS error type.
    code: &'static str,
    message: String,
}

impl Refusal {
    /// A refusal with HTTP `status`, the AWS error type `code` and `message`.
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    /// Not a GET; `logins` are the commands that log in at Vault itself
    /// (a login is what a POST to the proxy usually is).
    pub fn method(logins: &[String]) -> Self {
        Refusal::new(
            405,
            "InvalidRequestException",
            format!("only GET is served{}", to_log_in(logins)),
        )
    }

    /// A request relayed by another host.
    pub fn forwarded() -> Self {
        Refusal::new(
            400,
            "InvalidRequestException",
            "a request with X-Forwarded-For is refused: the proxy serves its own host only",
        )
    }

    /// No token header.
    pub fn no_token(api: Api) -> Self {
        let message = match api {
            Api::Aws => "missing X-Aws-Parameters-Secrets-Token header: send the proxy token (from proxy.token_file)",
            Api::Vault => "missing client token: send the proxy token (from proxy.token_file) in X-Vault-Token",
        };
        Refusal::new(401, "MissingAuthenticationTokenException", message)
    }

    /// A token that is not the proxy's; `logins` as for [`Refusal::method`]
    /// (`bao login TOKEN` looks the token up).
    pub fn bad_token(logins: &[String]) -> Self {
        Refusal::new(
            403,
            "AccessDeniedException",
            format!(
                "permission denied: the token is not the proxy token (from proxy.token_file){}",
                to_log_in(logins)
            ),
        )
    }

    /// Nothing configured answers to `what` (an id, or a path under /v1/).
    pub fn not_found(api: Api, what: &str) -> Self {
        let message = match api {
            Api::Aws => format!("no secret `{what}` is configured in this proxy"),
            Api::Vault => format!("no secret is configured at `{what}` in this proxy"),
        };
        Refusal::new(404, "ResourceNotFoundException", message)
    }

    /// The first fetch has not finished.
    pub fn not_fetched(id: &str) -> Self {
        Refusal::new(
            503,
            "ServiceUnavailableException",
            format!("secret `{id}` has not been fetched yet; try again"),
        )
    }

    /// What is held for `id` was read with a login its source has since
    /// found refused or revoked, and it has not been read again yet.
    pub fn not_read_again(id: &str) -> Self {
        Refusal::new(
            503,
            "ServiceUnavailableException",
            format!("secret `{id}` was read with a login that has since been refused, and has not been read again yet; try again"),
        )
    }

    /// The login of source `source` is refused or has run out; `why` says
    /// how to log in again.
    pub fn login(source: &str, why: &str) -> Self {
        Refusal::new(
            503,
            "ServiceUnavailableException",
            format!(
                "source `{source}` cannot log in: {why}; the proxy tries again at the next request"
            ),
        )
    }

    /// `refreshNow` did not finish in time.
    pub fn timeout(id: &str) -> Self {
        Refusal::new(
            504,
            "TimeoutError",
            format!("the backend did not answer in time for `{id}`"),
        )
    }

    /// The secret cannot be put in this shape (see the log).
    pub fn unservable(id: &str) -> Self {
        Refusal::new(
            500,
            "InternalFailure",
            format!("secret `{id}` cannot be served in this shape; the log says why"),
        )
    }

    /// The answer's body for a client of `api`.
    pub fn body(&self, api: Api) -> Vec<u8> {
        let v = match api {
            Api::Vault => json!({ "errors": [self.message] }),
            Api::Aws => json!({ "__type": self.code, "message": self.message }),
        };
        v.to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(r: &Refusal, api: Api) -> serde_json::Value {
        serde_json::from_slice(&r.body(api)).unwrap()
    }

    #[test]
    fn each_api_gets_its_own_error_shape() {
        let r = Refusal::not_found(Api::Vault, "secret/data/nope");
        assert_eq!(
            parsed(&r, Api::Vault),
            json!({ "errors": ["no secret is configured at `secret/data/nope` in this proxy"] })
        );
        let r = Refusal::not_found(Api::Aws, "prod/x\"y");
        let aws = parsed(&r, Api::Aws);
        assert_eq!(aws["__type"], "ResourceNotFoundException");
        assert_eq!(
            aws["message"],
            "no secret `prod/x\"y` is configured in this proxy"
        );
        assert_eq!(r.status, 404);
    }

    #[test]
    fn a_missing_token_and_a_wrong_one_are_told_apart() {
        let missing = Refusal::no_token(Api::Aws);
        let wrong = Refusal::bad_token(&[]);
        assert_eq!((missing.status, wrong.status), (401, 403));
        assert_ne!(missing.message, wrong.message);
        assert!(missing.message.contains("X-Aws-Parameters-Secrets-Token"));
        assert!(Refusal::no_token(Api::Vault)
            .message
            .contains("X-Vault-Token"));
    }

    #[test]
    fn a_login_sent_to_the_proxy_is_told_where_to_go() {
        let login = ["VAULT_ADDR=http://v:8200 bao login".to_owned()];
        assert_eq!(Refusal::method(&[]).message, "only GET is served");
        assert_eq!(
            Refusal::method(&login).message,
            "only GET is served; the proxy only reads: to log in, run `VAULT_ADDR=http://v:8200 bao login` at Vault itself"
        );
        assert!(Refusal::bad_token(&login)
            .message
            .ends_with("at Vault itself"));
    }
}
