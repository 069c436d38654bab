//! What an app needs to reach the proxy, as shell lines to paste or `eval`:
//! `VAULT_ADDR` for Vault clients, the token for both APIs read from the
//! token file by the shell (the token itself is never printed), and the AWS
//! Secrets Manager Agent's URL form; and for a Vault source that logs in with
//! the user's own token, how to log in at Vault itself, since `bao login`
//! with `VAULT_ADDR` on the proxy cannot work (the proxy only reads).

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use crate::config::Config;
use crate::source::user_logins;

/// The lines for `config`'s proxy, if it has one, with its first secret as
/// the example.
pub fn for_config(config: &Config) -> Option<String> {
    let p = config.proxy.as_ref()?;
    let example = config.secrets.first().map_or("NAME", |s| s.name.as_str());
    Some(lines(
        p.listen,
        &p.token_file,
        example,
        &user_logins(config),
    ))
}

/// The lines for a proxy on `listen` with its token in `token_file`;
/// `example` names a secret for the AWS URL; `logins` are the commands that
/// log in at Vault itself, as comments.
pub fn lines(listen: SocketAddr, token_file: &Path, example: &str, logins: &[String]) -> String {
    let url = format!("http://{}", reachable(listen));
    let secret_id: String = form_urlencoded::byte_serialize(example.as_bytes()).collect();
    let mut out = String::new();
    let _ = writeln!(out, "export VAULT_ADDR={}", quote(&url));
    let _ = writeln!(
        out,
        "export VAULT_TOKEN=\"$(cat {})\"",
        quote(&token_file.to_string_lossy())
    );
    let _ = writeln!(out, "export AWS_TOKEN=\"$VAULT_TOKEN\"");
    let _ = writeln!(
        out,
        "# AWS agent API: curl -H \"X-Aws-Parameters-Secrets-Token: $AWS_TOKEN\" {}",
        quote(&format!("{url}/secretsmanager/get?secretId={secret_id}"))
    );
    for login in logins {
        let _ = writeln!(
            out,
            "# to log in, at Vault itself (the proxy only reads): {login}"
        );
    }
    out
}

/// Where a client on this host connects: loopback when the proxy listens on
/// every address.
fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `s` as one shell word, in single quotes.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_token_file_and_quote_for_the_shell() {
        let token = Path::new("/home/d e/it's/token");
        let text = lines("0.0.0.0:2773".parse().unwrap(), token, "prod/api\n", &[]);
        assert_eq!(
            text,
            "export VAULT_ADDR='http://127.0.0.1:2773'\n\
             export VAULT_TOKEN=\"$(cat '/home/d e/it'\\''s/token')\"\n\
             export AWS_TOKEN=\"$VAULT_TOKEN\"\n\
             # AWS agent API: curl -H \"X-Aws-Parameters-Secrets-Token: $AWS_TOKEN\" 'http://127.0.0.1:2773/secretsmanager/get?secretId=prod%2Fapi%0A'\n"
        );
        let login = vec!["VAULT_ADDR=https://vault.example:8200 bao login".to_owned()];
        let v6 = lines("[::]:9".parse().unwrap(), token, "a", &login);
        assert!(
            v6.starts_with("export VAULT_ADDR='http://[::1]:9'\n"),
            "{v6}"
        );
        assert!(
            v6.ends_with("\n# to log in, at Vault itself (the proxy only reads): VAULT_ADDR=https://vault.example:8200 bao login\n"),
            "{v6}"
        );
    }
}
