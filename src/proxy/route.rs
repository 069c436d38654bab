//! Which configured secret a request names: the registered APIs
//! ([`crate::source::PROXY_APIS`]) are asked in order, and the first that
//! finds it answers; a path one API knows but finds nothing at may still be
//! another's (the AWS agent also answers `/v1/<secretId>`, after Vault's
//! paths). Only configured secrets are ever served.

use crate::config::Config;
use crate::source::proxy_api::{Api, Found, Routed, Routes};
use crate::source::PROXY_APIS;

/// An answer's shape, for the bodies kept per (secret, shape): which
/// registered API, and which of its forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Index into [`PROXY_APIS`].
    pub api: u8,
    /// The API's own form.
    pub form: u8,
}

/// What a request asks for.
pub(crate) enum Route {
    /// `/ping`: liveness, no token needed.
    Ping,
    /// What registered API `api` found.
    Found {
        /// Index into [`PROXY_APIS`].
        api: u8,
        /// What it found.
        found: Found,
    },
    /// Nothing configured answers to this.
    NotFound {
        /// What was asked for: an id, or a path.
        what: String,
    },
}

impl Route {
    /// Whether it is answered without the token.
    pub fn open(&self) -> bool {
        matches!(
            self,
            Route::Ping
                | Route::Found {
                    found: Found::Answer { open: true, .. },
                    ..
                }
        )
    }

    /// The API whose shape the answer takes: the one that found it, else
    /// the token header the client sent.
    pub fn api(&self, aws_header: bool) -> Api {
        match self {
            Route::Found { api, .. } => PROXY_APIS[usize::from(*api)].errors(),
            Route::Ping | Route::NotFound { .. } if aws_header => Api::Aws,
            Route::Ping | Route::NotFound { .. } => Api::Vault,
        }
    }
}

/// Where each configured secret is asked for, made once per config, one
/// index per registered API: a request finds its secret by a hash lookup,
/// whatever the number of secrets. Where several secrets answer to the same
/// name or path, the first configured one is served.
#[derive(Default)]
pub struct Index(Vec<Box<dyn Routes>>);

impl Index {
    /// The index of `config`'s secrets.
    pub fn new(config: &Config) -> Self {
        Index(PROXY_APIS.iter().map(|api| api.index(config)).collect())
    }
}

/// Resolves a request path and query to a configured secret, found in
/// `index`. Only configured secrets are ever served.
pub(crate) fn route(index: &Index, path: &str, query: Option<&str>) -> Route {
    if path == "/ping" {
        return Route::Ping;
    }
    let mut missed = None;
    for (api, routes) in (0u8..).zip(&index.0) {
        match routes.route(path, query) {
            Routed::Other => {}
            Routed::Missed(what) => {
                missed.get_or_insert(what);
            }
            Routed::Found(found) => return Route::Found { api, found },
        }
    }
    Route::NotFound {
        what: missed.unwrap_or(path).to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
