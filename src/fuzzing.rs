//! The entry points of the fuzz targets in `fuzz/` (cargo-fuzz): each parser
//! or renderer that takes outside input, reached here without making its
//! module public. Not an API: hidden from the docs, used by nothing in
//! ramsecrets itself; errors come back as their messages, which is what the
//! targets check (no secret byte in them).

pub use crate::render::format::Rendered;
pub use crate::secret::{Fetched, Fields, Lease, SecretBytes};

use crate::config::{Secret, Template};
use crate::source::chain;

/// The files `secret` renders from `fetched` (`render::format`), or the
/// error's message.
pub fn render(secret: &Secret, fetched: &Fetched) -> Result<Vec<Rendered>, String> {
    crate::render::format::render_fetched(secret, fetched).map_err(|e| e.to_string())
}

/// The file of a top-level `template` rendered over the secrets of `secrets`
/// (`fetched[i]` for the secret at index `i`), or the error's message.
pub fn render_template(
    template: &Template,
    secrets: &[Secret],
    fetched: &[Option<Fetched>],
) -> Result<Rendered, String> {
    crate::render::template::render(template, secrets, |i| {
        fetched.get(i).and_then(Option::as_ref)
    })
    .map_err(|e| e.to_string())
}

/// Whether the agent template (Vault Agent's) `text` for a read of `path` is admitted
/// (as a config or an annotation is checked), or the refusal's message.
pub fn agent_template_check(text: &str, path: &str) -> Result<(), String> {
    crate::render::agent_template::check(text, path).map_err(|e| e.to_string())
}

/// The agent template (Vault Agent's) `text` rendered over a read of `path` that
/// answered `data` (the JSON of its `data`), or the error's message.
pub fn agent_template_render(text: &str, path: &str, data: &[u8]) -> Result<SecretBytes, String> {
    crate::render::agent_template::render(text, path, &SecretBytes::new(data.to_vec()))
        .map_err(|e| e.to_string())
}

/// The hand-off state in `bytes` as the sidecar reads it at `now`
/// (`engine::handoff`), or the refusal's message.
pub fn state(bytes: &[u8], now: std::time::SystemTime) -> Result<State, String> {
    let file = std::path::Path::new("/run/ramsecrets/state/state.json");
    State::parse(bytes, file, now).map_err(|e| chain(&e))
}

/// The bytes `state` is saved as.
pub fn state_bytes(state: &State) -> SecretBytes {
    state.to_bytes().unwrap_or_default()
}

pub use crate::engine::handoff::{Held, State};

/// What a Vault read asked for, which decides how its answer is read.
#[derive(Clone, Copy, Debug)]
pub enum VaultRead {
    /// A KV v1 secret.
    Kv1,
    /// A KV v2 secret.
    Kv2,
    /// A logical read; `keep`: for an agent template.
    Read {
        /// Keep the answer's `data` whole.
        keep: bool,
    },
    /// A PKI issue.
    Pki,
}

/// What a Vault answer of `status` with `body` (and a `Retry-After` header)
/// gives for `read`, or the error's message with its causes.
pub fn vault_answer(
    read: VaultRead,
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
) -> Result<Fetched, String> {
    use crate::source::answers;
    let what = "secret `fuzz`";
    let retry = retry_after
        .and_then(|v| crate::backoff::parse_retry_after(v, std::time::SystemTime::now()));
    let fetched = answers::vault_answer(status, body, what, retry).and_then(|json| match read {
        VaultRead::Kv1 => answers::kv1_fetched(json, what),
        VaultRead::Kv2 => answers::kv2_fetched(json, what),
        VaultRead::Read { keep } => answers::read_fetched(json, keep, what),
        VaultRead::Pki => answers::pki_fetched(json, what),
    });
    fetched.map_err(|e| chain(&e))
}

/// What an AWS GetSecretValue answer with `string` or `binary` gives, or the
/// error's message with its causes.
pub fn aws_answer(
    string: Option<String>,
    binary: Option<Vec<u8>>,
    version: Option<String>,
) -> Result<Fetched, String> {
    use crate::source::answers;
    let value = answers::aws_value(
        string,
        binary.map(aws_sdk_secretsmanager::primitives::Blob::new),
    );
    answers::aws_fetched("secret_id `fuzz`", value, version, Default::default())
        .map_err(|e| chain(&e))
}

/// The local credential proxy over a config and the values it holds, answering
/// requests as its server would (`proxy`).
pub struct Proxy {
    proxy: crate::proxy::Proxy,
    runtime: tokio::runtime::Runtime,
    _published: tokio::sync::watch::Sender<std::sync::Arc<crate::engine::snapshot::Snapshot>>,
}

/// A proxy over `config` with `token`, holding `values` (secret name and
/// what was fetched). A `refreshNow` finds no engine and serves what it holds.
pub fn proxy(
    config: crate::config::Config,
    token: &[u8],
    values: Vec<(&str, Fetched)>,
) -> Result<Proxy, String> {
    use std::sync::Arc;
    let config = Arc::new(config);
    let sources = crate::source::build(&config).map_err(|e| chain(&e))?;
    let mut snapshot = crate::engine::snapshot::Snapshot::new(config, sources);
    for (name, fetched) in values {
        if let Some(i) = snapshot.config.secrets.iter().position(|s| s.name == name) {
            snapshot.put(i, &Arc::new(fetched));
        }
    }
    let (published, snapshots) = tokio::sync::watch::channel(Arc::new(snapshot));
    let (engine, _) = tokio::sync::mpsc::channel(1);
    let metrics = Arc::new(crate::telemetry::metrics::Metrics::new(true));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| e.to_string())?;
    let token = SecretBytes::new(token.to_vec());
    Ok(Proxy {
        proxy: crate::proxy::Proxy::new(snapshots, metrics, token, engine),
        runtime,
        _published: published,
    })
}

impl Proxy {
    /// The status and body of the answer to `method` `target` with
    /// `headers`; `None` for a request hyper would not have parsed.
    pub fn answer(
        &self,
        method: &[u8],
        target: &[u8],
        headers: &[(&[u8], &[u8])],
    ) -> Option<(u16, Vec<u8>)> {
        use http_body_util::BodyExt;
        let mut req = hyper::Request::builder()
            .method(hyper::Method::from_bytes(method).ok()?)
            .uri(hyper::Uri::try_from(target).ok()?);
        for (name, value) in headers {
            req = req.header(
                hyper::header::HeaderName::from_bytes(name).ok()?,
                hyper::header::HeaderValue::from_bytes(value).ok()?,
            );
        }
        let req = req.body(()).ok()?;
        let answer = self.runtime.block_on(self.proxy.handle(req));
        let status = answer.status().as_u16();
        let body = self.runtime.block_on(answer.into_body().collect()).ok()?;
        Some((status, body.to_bytes().to_vec()))
    }
}

/// The admission webhook's decisions (`inject`), for one injector config.
pub struct Injector(crate::inject::Injector);

/// The injector of `config` on a cluster of `version` (major, minor).
pub fn injector(config: &crate::config::Config, version: (u32, u32)) -> Result<Injector, String> {
    crate::inject::Injector::new(config, version)
        .map(Injector)
        .map_err(|e| chain(&e))
}

impl Injector {
    /// The AdmissionReview the webhook answers to the review `body`.
    pub fn review(&self, body: &[u8]) -> Vec<u8> {
        crate::inject::server::review(&self.0, body).0
    }
}
