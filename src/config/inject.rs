//! The `inject:` section, read by `ramsecrets inject` only: where the admission
//! webhook listens, its certificate, the image injected containers run, and
//! the defaults of injected pods. The pods use the file's `sources:` (Vault
//! address, CA and kubernetes auth mount; AWS region), so a file with `inject:`
//! needs no `output:` or `secrets:`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Source, Validator};

/// `inject:` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInject {
    /// Address of the HTTPS server (default `0.0.0.0:8443`): `POST /mutate`,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub listen: Option<String>,
    /// The serving certificate: files, or `auto`.
    pub tls: RawInjectTls,
    /// The image injected containers run, e.g. `ghcr.io/example/ramsecrets:0.1.0`.
    pub image: String,
    /// Audience of the projected service-account token pods log in to Vault with
    /// (default `vault`); the Vault role's `audience` must match.
    pub audience: Option<String>,
    /// The API server's version, e.g. `"1.28"`: below 1.29 pods get an init
    /// container and a regular sidecar instead of a native sidecar. Default:
    /// asked of the API server (`/version`) at start.
    pub kubernetes_version: Option<String>,
    /// How the injector reaches the API server (default: in-cluster).
    pub kubernetes: Option<RawKubernetes>,
    /// Defaults of injected pods.
    pub defaults: Option<RawInjectDefaults>,
    /// `vault-k8s`: also serve pods annotated for HashiCorp's vault-k8s
    /// injector (`vault.hashicorp.com/agent-inject: "true"`), translating
    /// their annotations. Off by default.
    pub compat: Option<Compat>,
    /// With `compat: vault-k8s`: admit pods annotated
    /// `vault.hashicorp.com/tls-skip-verify: "true"`, whose sidecar then does
    /// not verify Vault's certificate (default false: such pods are denied).
    #[serde(default)]
    pub compat_allow_tls_skip_verify: bool,
}

/// Another injector whose annotated pods ramsecrets serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Compat {
    /// HashiCorp's vault-k8s (`vault.hashicorp.com/` annotations).
    #[serde(rename = "vault-k8s")]
    VaultK8s,
}

/// The webhook's serving certificate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInjectTls {
    /// PEM certificate chain (e.g. from cert-manager); reloaded when it changes.
    pub cert_file: Option<PathBuf>,
    /// PEM private key; reloaded when it changes.
    pub key_file: Option<PathBuf>,
    /// Make a CA and a serving certificate at start and patch the CA into the
    /// webhook's MutatingWebhookConfiguration.
    pub auto: Option<RawAutoTls>,
}

/// `tls.auto`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAutoTls {
    /// Name of the MutatingWebhookConfiguration whose webhooks get the CA bundle.
    pub webhook: String,
    /// The injector's Service: the certificate names `SERVICE.NAMESPACE.svc` and
    /// its longer and shorter forms.
    pub service: Option<String>,
    /// The Service's namespace (with `service`).
    pub namespace: Option<String>,
    /// More DNS names and IP addresses of the certificate.
    #[serde(default)]
    pub names: Vec<String>,
}

/// Access to the API server.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetes {
    /// `https://HOST:PORT` (default: from `KUBERNETES_SERVICE_HOST` and `_PORT`).
    pub host: Option<String>,
    /// CA of the API server (default: the service account's `ca.crt`).
    pub ca_file: Option<PathBuf>,
    /// Bearer token file (default: the service account's token).
    pub token_file: Option<PathBuf>,
}

/// Defaults of injected pods.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInjectDefaults {
    /// Refresh interval of the sidecar (default 5m).
    pub refresh: Option<super::blocks::DurationText>,
    /// Where app containers see the secrets (default `/run/secrets/ramsecrets`).
    pub mount_path: Option<String>,
    /// Size limit of the secrets memory volume (default `16Mi`).
    pub size_limit: Option<String>,
    /// Resources of injected containers (default requests 5m CPU, 16Mi;
    /// limits 250m CPU, 64Mi), which pods may change with `requests-*` and
    /// `limits-*` annotations.
    pub resources: Option<RawResources>,
    /// User id of injected containers (default 65532); `null` leaves it to
    /// the platform (OpenShift's restricted SCC assigns one per namespace),
    /// still with `runAsNonRoot: true`.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<i64>")]
    pub run_as_user: Option<Option<i64>>,
    /// Port of the sidecar's /readyz, probed by the kubelet (default 8099).
    pub health_port: Option<u16>,
}

/// Requests and limits, each kind with its own default.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    /// Requests (default `cpu: 5m`, `memory: 16Mi`).
    pub requests: Option<RawQuantities>,
    /// Limits (default `cpu: 250m`, so that a namespace with a `limits.cpu`
    /// quota admits pods, and `memory: 64Mi`).
    pub limits: Option<RawQuantities>,
}

/// Kubernetes quantities, e.g. `5m`, `16Mi`; a key left out keeps its
/// default, `null` sets none.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawQuantities {
    /// CPU, e.g. `5m`.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<String>")]
    pub cpu: Option<Option<String>>,
    /// Memory, e.g. `16Mi`.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<String>")]
    pub memory: Option<Option<String>>,
    /// Ephemeral storage, e.g. `1Mi` (default none).
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<String>")]
    pub ephemeral_storage: Option<Option<String>>,
}

/// A key whose `null` means something: `Some(None)`; absent: `None` (with
/// `#[serde(default)]`).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Validated `inject:` settings.
#[derive(Debug, Clone)]
pub struct Inject {
    /// HTTPS listen address.
    pub listen: SocketAddr,
    /// Certificate.
    pub tls: InjectTls,
    /// Image of injected containers.
    pub image: String,
    /// Audience of the projected token.
    pub audience: String,
    /// `(major, minor)` of the API server when set in the file.
    pub kubernetes_version: Option<(u32, u32)>,
    /// API server access.
    pub kubernetes: Kubernetes,
    /// Pod defaults.
    pub defaults: PodDefaults,
    /// Pods of another injector served too.
    pub compat: Option<Compat>,
    /// vault-k8s pods may skip verifying Vault's certificate.
    pub compat_allow_tls_skip_verify: bool,
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum InjectTls {
    /// PEM files, reloaded when they change.
    Files {
        /// Certificate chain.
        cert_file: PathBuf,
        /// Private key.
        key_file: PathBuf,
    },
    /// Generated at start; the CA is patched into the named webhook configuration.
    Auto {
        /// MutatingWebhookConfiguration name.
        webhook: String,
        /// Certificate names.
        names: Vec<String>,
    },
}

/// API server access; `None` fields mean in-cluster defaults.
#[derive(Debug, Clone, Default)]
pub struct Kubernetes {
    /// Base URL.
    pub host: Option<String>,
    /// CA file.
    pub ca_file: Option<PathBuf>,
    /// Token file.
    pub token_file: Option<PathBuf>,
}

/// Defaults of injected pods.
#[derive(Debug, Clone)]
pub struct PodDefaults {
    /// Sidecar refresh interval.
    pub refresh: Duration,
    /// Secrets mount path.
    pub mount_path: String,
    /// Secrets volume size limit.
    pub size_limit: String,
    /// Requests and limits.
    pub resources: Resources,
    /// User id; `None`: the platform's.
    pub run_as_user: Option<i64>,
    /// Health port.
    pub health_port: u16,
}

/// Requests and limits of injected containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Requests.
    pub requests: Quantities,
    /// Limits.
    pub limits: Quantities,
}

/// Validated quantities of each resource, `None` where unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quantities {
    /// `cpu`.
    pub cpu: Option<String>,
    /// `memory`.
    pub memory: Option<String>,
    /// `ephemeral-storage`.
    pub ephemeral_storage: Option<String>,
}

impl Quantities {
    /// Each resource by its Kubernetes name, with its quantity.
    pub fn each(&self) -> [(&'static str, Option<&str>); 3] {
        [
            ("cpu", self.cpu.as_deref()),
            ("memory", self.memory.as_deref()),
            ("ephemeral-storage", self.ephemeral_storage.as_deref()),
        ]
    }

    /// The quantity of resource `name` (as [`Quantities::each`] names it).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        match name {
            "cpu" => Some(&mut self.cpu),
            "memory" => Some(&mut self.memory),
            "ephemeral-storage" => Some(&mut self.ephemeral_storage),
            _ => None,
        }
    }
}

impl Resources {
    /// The first resource whose request exceeds its limit: `(resource,
    /// request, limit)`. Kubernetes refuses such a container.
    pub fn request_above_limit(&self) -> Option<(&'static str, &str, &str)> {
        let limits = self.limits.each();
        self.requests
            .each()
            .into_iter()
            .zip(limits)
            .find_map(|((name, request), (_, limit))| {
                let (request, limit) = (request?, limit?);
                (quantity_value(request)? > quantity_value(limit)?)
                    .then_some((name, request, limit))
            })
    }
}

impl std::fmt::Display for Inject {
    /// The injector's part of `check`'s summary.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tls = match &self.tls {
            InjectTls::Files { cert_file, .. } => {
                format!("certificate {} (reloaded on change)", cert_file.display())
            }
            InjectTls::Auto { webhook, names } => {
                format!(
                    "certificate made at start for {}, CA patched into webhook {webhook}",
                    names.join(", ")
                )
            }
        };
        writeln!(f, "inject: https://{}/mutate, {tls}", self.listen)?;
        let version = match self.kubernetes_version {
            Some((major, minor)) => format!("Kubernetes {major}.{minor} (set)"),
            None => "Kubernetes version from the API server".into(),
        };
        let d = &self.defaults;
        writeln!(
            f,
            "  pods: image {}, token audience {}, secrets at {} ({}), refresh {}, {version}",
            self.image,
            self.audience,
            d.mount_path,
            d.size_limit,
            super::duration::format(d.refresh)
        )
    }
}

/// Whether `q` reads as a Kubernetes quantity (`5m`, `16Mi`, `0.5`, `1e3`).
pub fn is_quantity(q: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    SUFFIXES.iter().any(|s| {
        q.strip_suffix(s).is_some_and(|n| {
            let mut parts = n.splitn(2, '.');
            let whole = parts.next().unwrap_or_default();
            let frac = parts.next();
            !n.is_empty()
                && whole.chars().all(|c| c.is_ascii_digit())
                && frac.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
        })
    })
}

/// The value of quantity `q` (which [`is_quantity`] accepts) in its base
/// unit, to compare two quantities.
pub fn quantity_value(q: &str) -> Option<f64> {
    const SCALES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    if !is_quantity(q) {
        return None;
    }
    let (number, scale) = SCALES
        .iter()
        .find_map(|(suffix, scale)| Some((q.strip_suffix(suffix)?, *scale)))
        .unwrap_or((q, 1.0));
    Some(number.parse::<f64>().ok()? * scale)
}

/// An absolute path with no `..`, as a container mount path.
fn is_mount_path(p: &str) -> bool {
    p.starts_with('/') && p.len() > 1 && !p.split('/').any(|s| s == "..") && !p.contains(':')
}

impl Validator<'_> {
    pub(super) fn inject(&mut self, raw: RawInject, sources: &[Source]) -> Option<Inject> {
        let listen = raw.listen.as_deref().unwrap_or("0.0.0.0:8443");
        let listen = match listen.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    "inject.listen",
                    format!("`{listen}` is not an address like 0.0.0.0:8443"),
                );
                None
            }
        };
        let tls = match (raw.tls.cert_file, raw.tls.key_file, raw.tls.auto) {
            (Some(cert_file), Some(key_file), None) => Some(InjectTls::Files {
                cert_file: self.path("inject.tls.cert_file", cert_file),
                key_file: self.path("inject.tls.key_file", key_file),
            }),
            (None, None, Some(auto)) => {
                let mut names = match (&auto.service, &auto.namespace) {
                    (Some(svc), Some(ns)) => vec![
                        svc.clone(),
                        format!("{svc}.{ns}"),
                        format!("{svc}.{ns}.svc"),
                        format!("{svc}.{ns}.svc.cluster.local"),
                    ],
                    (None, None) => Vec::new(),
                    _ => {
                        self.problem("inject.tls.auto", "`service` and `namespace` go together");
                        Vec::new()
                    }
                };
                names.extend(auto.names);
                if auto.webhook.is_empty() || names.is_empty() {
                    self.problem(
                        "inject.tls.auto",
                        "needs `webhook` (the MutatingWebhookConfiguration) and the certificate's names (`service` and `namespace`, or `names`)",
                    );
                    None
                } else {
                    Some(InjectTls::Auto {
                        webhook: auto.webhook,
                        names,
                    })
                }
            }
            _ => {
                self.problem(
                    "inject.tls",
                    "needs `cert_file` and `key_file`, or `auto` (not both)",
                );
                None
            }
        };
        if raw.image.trim().is_empty() {
            self.problem("inject.image", "must not be empty");
        }
        let kubernetes_version = raw.kubernetes_version.as_deref().and_then(|v| {
            let parsed = parse_version(v);
            if parsed.is_none() {
                self.problem(
                    "inject.kubernetes_version",
                    format!("`{v}` is not a version like \"1.28\""),
                );
            }
            parsed
        });
        let kubernetes = match raw.kubernetes {
            Some(k) => Kubernetes {
                host: k.host,
                ca_file: k.ca_file.map(|p| self.path("inject.kubernetes.ca_file", p)),
                token_file: k
                    .token_file
                    .map(|p| self.path("inject.kubernetes.token_file", p)),
            },
            None => Kubernetes::default(),
        };
        for (i, s) in sources.iter().enumerate() {
            if let Err((key, why)) = s.kind.injectable() {
                self.problem(format!("sources[{i}].{key}"), why);
            }
        }
        if raw.compat_allow_tls_skip_verify && raw.compat.is_none() {
            self.problem(
                "inject.compat_allow_tls_skip_verify",
                "only means something with `compat: vault-k8s` (it admits vault-k8s pods annotated tls-skip-verify)",
            );
        }
        let defaults = self.pod_defaults(raw.defaults);
        Some(Inject {
            listen: listen?,
            tls: tls?,
            image: raw.image,
            audience: raw.audience.unwrap_or_else(|| "vault".into()),
            kubernetes_version,
            kubernetes,
            defaults: defaults?,
            compat: raw.compat,
            compat_allow_tls_skip_verify: raw.compat_allow_tls_skip_verify,
        })
    }

    fn pod_defaults(&mut self, raw: Option<RawInjectDefaults>) -> Option<PodDefaults> {
        let d = raw.unwrap_or(RawInjectDefaults {
            refresh: None,
            mount_path: None,
            size_limit: None,
            resources: None,
            run_as_user: None,
            health_port: None,
        });
        let refresh = self.duration(
            "inject.defaults.refresh",
            d.refresh.as_deref(),
            Duration::from_secs(300),
        );
        let mount_path = d
            .mount_path
            .unwrap_or_else(|| "/run/secrets/ramsecrets".into());
        if !is_mount_path(&mount_path) {
            self.problem(
                "inject.defaults.mount_path",
                format!("`{mount_path}` is not an absolute path without `..`"),
            );
        }
        let size_limit = d.size_limit.unwrap_or_else(|| "16Mi".into());
        let mut quantity = |at: &str, q: Option<String>| {
            if let Some(bad) = q.as_deref().filter(|q| !is_quantity(q)) {
                self.problem(
                    format!("inject.defaults.{at}"),
                    format!("`{bad}` is not a Kubernetes quantity like 5m or 16Mi"),
                );
            }
            q
        };
        let size_limit = quantity("size_limit", Some(size_limit));
        let (requests, limits) = match d.resources {
            Some(r) => (r.requests, r.limits),
            None => (None, None),
        };
        let mut kind = |at: &str, raw: Option<RawQuantities>, cpu: &str, memory: &str| {
            let (c, m, e) = match raw {
                Some(q) => (q.cpu, q.memory, q.ephemeral_storage),
                None => (None, None, None),
            };
            Quantities {
                cpu: quantity(
                    &format!("resources.{at}.cpu"),
                    c.unwrap_or(Some(cpu.into())),
                ),
                memory: quantity(
                    &format!("resources.{at}.memory"),
                    m.unwrap_or(Some(memory.into())),
                ),
                ephemeral_storage: quantity(
                    &format!("resources.{at}.ephemeral_storage"),
                    e.flatten(),
                ),
            }
        };
        let resources = Resources {
            requests: kind("requests", requests, "5m", "16Mi"),
            limits: kind("limits", limits, "250m", "64Mi"),
        };
        if let Some((name, request, limit)) = resources.request_above_limit() {
            self.problem(
                format!(
                    "inject.defaults.resources.requests.{}",
                    name.replace('-', "_")
                ),
                format!("`{request}` is above the limit `{limit}`"),
            );
        }
        let run_as_user = d.run_as_user.unwrap_or(Some(65532));
        if run_as_user.is_some_and(|uid| uid <= 0) {
            self.problem(
                "inject.defaults.run_as_user",
                "injected containers run as non-root: use a uid above 0, or null for the platform's",
            );
        }
        Some(PodDefaults {
            refresh: refresh?,
            mount_path,
            size_limit: size_limit.unwrap_or_default(),
            resources,
            run_as_user,
            health_port: d.health_port.unwrap_or(8099),
        })
    }
}

/// `"1.28"`, `"v1.28.3"` or a `/version` `gitVersion` → `(1, 28)`.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let v = v.trim().trim_start_matches('v');
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

#[cfg(test)]
mod tests;
