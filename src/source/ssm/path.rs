//! `parameters_by_path`: every parameter under a path, read with
//! GetParametersByPath (recursive, decrypted, 10 a page), one field per
//! parameter keyed by the last segment of its name.

use std::sync::atomic::Ordering;

use aws_sdk_ssm::types::Parameter as Answer;
use tokio::time::Instant;

use super::Inner;
use crate::secret::{Fetched, Fields, SecretBytes};
use crate::source::{paced, sdk_error, Error, Result};

/// Pages followed, at 10 parameters a page: a guard against a looping NextToken.
const MAX_PAGES: usize = 500;

impl Inner {
    /// Reads every parameter under `path`.
    pub(super) async fn by_path(&self, path: &str, deadline: Instant) -> Result<Fetched> {
        let what = format!("parameters_by_path `{path}`");
        let client = self.client().await?;
        let mut found: Vec<(String, SecretBytes)> = Vec::new();
        let mut next_token: Option<String> = None;
        for page in 0.. {
            if page == MAX_PAGES {
                return Err(Error::data(format!(
                    "{what}: more than {MAX_PAGES} pages of parameters"
                )));
            }
            let out = paced(&self.gate, deadline, &what, || async {
                let _permit = self.permits.acquire().await.ok();
                self.calls
                    .get_parameters_by_path
                    .fetch_add(1, Ordering::Relaxed);
                client
                    .get_parameters_by_path()
                    .path(path)
                    .recursive(true)
                    .with_decryption(true)
                    .set_next_token(next_token.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error(e, &what))
            })
            .await?;
            for Answer { name, value, .. } in out.parameters.unwrap_or_default() {
                let (Some(name), Some(value)) = (name, value) else {
                    return Err(Error::data(format!(
                        "{what}: a parameter came without its name or value"
                    )));
                };
                found.push((name, SecretBytes::from_string(value)));
            }
            next_token = out.next_token.filter(|t| !t.is_empty());
            if next_token.is_none() {
                break;
            }
        }
        fields(&what, found)
    }
}

/// The fields of the parameters found: the last segment of each name.
fn fields(what: &str, found: Vec<(String, SecretBytes)>) -> Result<Fetched> {
    if found.is_empty() {
        return Err(Error::not_found(format!(
            "{what}: no parameter under this path in this account and region"
        )));
    }
    let mut fields = Fields::new();
    let mut names: Vec<(String, String)> = Vec::new();
    for (name, value) in found {
        let field = name.rsplit('/').next().unwrap_or(&name).to_owned();
        if let Some((_, other)) = names.iter().find(|(f, _)| *f == field) {
            return Err(Error::data(format!(
                "{what}: `{other}` and `{name}` would both be field `{field}`: read them as two secrets, or one path deeper"
            )));
        }
        names.push((field.clone(), name));
        fields.insert(field, value);
    }
    Ok(Fetched::fields(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(names: &[&str]) -> Vec<(String, SecretBytes)> {
        names
            .iter()
            .map(|n| (n.to_string(), SecretBytes::copy_from(n)))
            .collect()
    }

    #[test]
    fn fields_are_last_segments_and_must_differ() {
        let f = fields(
            "p",
            found(&["/app/db/user", "/app/db/password", "/app/port"]),
        )
        .unwrap();
        let keys: Vec<&str> = f.fields.keys().map(String::as_str).collect();
        assert_eq!(keys, ["password", "port", "user"]);
        assert_eq!(f.fields["user"].expose(), b"/app/db/user");
        let e = fields("p", found(&["/app/db/password", "/app/cache/password"])).unwrap_err();
        assert!(matches!(e, Error::Data { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("`/app/db/password` and `/app/cache/password`"),
            "{e}"
        );
        let e = fields("parameters_by_path `/none`", Vec::new()).unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
    }
}
