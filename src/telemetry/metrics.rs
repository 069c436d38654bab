//! Prometheus metrics of the sidecar. Labels are secret, source and action
//! names; values never. Versions and lease ids, which identify credentials,
//! are labels only on a loopback `health.listen`, never on the pod network.
//! Each secret's series are held together, one entry per secret with its
//! name once ([`series::Table`]): the series are per secret, and so is their
//! memory.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use super::health::Health;
use super::registry::Registry;
use super::series::{self, Series};
use crate::config::Config;

/// A source label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// Source name.
    pub source: String,
}

/// An on_change action label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    /// Secret name, shared ([`series::Table::name`]).
    pub secret: Arc<str>,
    /// `signal`, `exec` or `http`.
    pub action: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

/// A proxy answer's status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// HTTP status code.
    pub status: u16,
}

/// A backend API operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    /// Source name.
    pub source: String,
    /// API operation, e.g. `BatchGetSecretValue`.
    pub operation: &'static str,
}

/// A refresh result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: &'static str,
}

fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.002, 2.0, 14))
}

/// Every metric the sidecar exports.
pub struct Metrics {
    registry: Registry,
    /// Every series of each secret: errors, writes, renewals, last success,
    /// expiry, version.
    secrets: Arc<series::Table>,
    requests: Family<SourceLabel, Histogram, fn() -> Histogram>,
    actions: Family<ActionLabel, Counter>,
    ready: Gauge,
    proxy_requests: Family<StatusLabel, Counter>,
    /// `proxy_requests` for status 200, resolved once: the proxy's hot path.
    proxy_ok: Counter,
    api_calls: Family<CallLabel, Counter>,
    proxy_cache_hits: Counter,
    proxy_refreshes: Family<ResultLabel, Counter>,
    /// Whether the secrets' versions are served.
    identifiers: bool,
}

impl Metrics {
    /// The metrics of a sidecar whose `health.listen` is loopback; the
    /// proxy's series only when it serves one.
    pub fn new(proxy: bool) -> Self {
        Metrics::with(proxy, true)
    }

    /// The metrics of the sidecar that runs `config`: without the versions
    /// and lease ids of `secret_version` when it serves them off loopback
    /// (a pod's IP, where anyone on the pod network can read them).
    pub fn of(config: &Config) -> Self {
        let loopback = config.health.is_none_or(|a| a.ip().is_loopback());
        Metrics::with(config.proxy.is_some(), loopback)
    }

    fn with(proxy: bool, identifiers: bool) -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            secrets: Arc::default(),
            requests: Family::new_with_constructor(request_histogram),
            actions: Family::default(),
            ready: Gauge::default(),
            proxy_requests: Family::default(),
            proxy_ok: Counter::default(),
            api_calls: Family::default(),
            proxy_cache_hits: Counter::default(),
            proxy_refreshes: Family::default(),
            identifiers,
            registry: Registry::default(),
        };
        registry.register(
            "secret_last_success_timestamp_seconds",
            "Unix time of the last successful fetch or renewal of a secret",
            m.secrets.view(Series::LastSuccess),
        );
        registry.register(
            "secret_fetch_errors",
            "Failed fetches or renewals of a secret",
            m.secrets.view(Series::FetchErrors),
        );
        registry.register(
            "secret_write_errors",
            "Failed writes of a secret's files (the output directory, not the backend)",
            m.secrets.view(Series::WriteErrors),
        );
        registry.register(
            "secret_writes",
            "Times a secret's files were written",
            m.secrets.view(Series::Writes),
        );
        registry.register(
            "secret_renewals",
            "Lease renewals of a secret",
            m.secrets.view(Series::Renewals),
        );
        registry.register(
            "secret_expiry_seconds",
            "Seconds until a secret's lease or certificate expires",
            m.secrets.view(Series::Expiry),
        );
        if identifiers {
            registry.register(
                "secret_version",
                "1 for the version and lease each secret holds now (identifiers, not values); only on a loopback health.listen",
                m.secrets.view(Series::Version),
            );
        }
        registry.register(
            "backend_request_duration_seconds",
            "Duration of backend fetches and renewals, retries included",
            m.requests.clone(),
        );
        registry.register(
            "on_change_actions",
            "on_change actions run",
            m.actions.clone(),
        );
        registry.register(
            "ready",
            "1 once every secret has been written",
            m.ready.clone(),
        );
        registry.register(
            "backend_api_calls",
            "Backend API calls by operation, for backends billed per call",
            m.api_calls.clone(),
        );
        if proxy {
            registry.register(
                "proxy_requests",
                "Proxy answers by HTTP status",
                m.proxy_requests.clone(),
            );
            registry.register(
                "proxy_cache_hits",
                "Proxy answers served from a ready body",
                m.proxy_cache_hits.clone(),
            );
            registry.register(
                "proxy_refreshes",
                "refreshNow fetches from the backend",
                m.proxy_refreshes.clone(),
            );
            for result in ["ok", "error"] {
                drop(m.proxy_refreshes.get_or_create(&ResultLabel { result }));
            }
        }
        let proxy_ok = m
            .proxy_requests
            .get_or_create(&StatusLabel { status: 200 })
            .clone();
        Metrics {
            registry,
            proxy_ok,
            ..m
        }
    }

    /// Makes every series of `config`'s secrets, sources and actions present
    /// (counters at 0), so that a dashboard and an alert see them before the
    /// first event; called again after a reload.
    pub fn declare(&self, config: &Config) {
        for s in &config.sources {
            drop(self.requests.get_or_create(&SourceLabel {
                source: s.name.clone(),
            }));
        }
        self.secrets
            .declare(config.secrets.iter().map(|s| s.name.as_str()));
        for s in &config.secrets {
            for a in &s.on_change {
                let secret = self.secrets.name(&s.name);
                for result in ["ok", "error"] {
                    drop(self.actions.get_or_create(&ActionLabel {
                        secret: secret.clone(),
                        action: a.kind(),
                        result,
                    }));
                }
            }
        }
    }
}

impl Metrics {
    /// A fetch or renewal of `name` succeeded.
    pub fn success(&self, name: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.secrets.succeeded(name, now);
    }

    /// A fetch or renewal of `name` failed.
    pub fn error(&self, name: &str) {
        self.secrets.count(name, Series::FetchErrors);
    }

    /// The files of `name` could not be written (a full or read-only
    /// output directory): not a fetch error, the backend answered.
    pub fn write_error(&self, name: &str) {
        self.secrets.count(name, Series::WriteErrors);
    }

    /// The files of `name` were written.
    pub fn wrote(&self, name: &str) {
        self.secrets.count(name, Series::Writes);
    }

    /// A lease of `name` was renewed.
    pub fn renewed(&self, name: &str) {
        self.secrets.count(name, Series::Renewals);
    }

    /// The lease or certificate of `name` ends at `at`.
    pub fn expires(&self, name: &str, at: SystemTime) {
        self.secrets.expires(name, at);
    }

    /// `name` now holds `version` under `lease` (its previous series goes).
    pub fn version(&self, name: &str, version: Option<&str>, lease: Option<&str>) {
        if !self.identifiers {
            return;
        }
        self.secrets
            .version(name, version.unwrap_or_default(), lease.unwrap_or_default());
    }

    /// A backend call of `source` that started at `started` ended.
    pub fn request(&self, source: &str, started: Instant) {
        self.requests
            .get_or_create(&SourceLabel {
                source: source.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// An on_change action ran.
    pub fn action(&self, secret: &str, action: &'static str, ok: bool) {
        self.actions
            .get_or_create(&ActionLabel {
                secret: self.secrets.name(secret),
                action,
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// `source` has made `total` calls of `operation` so far.
    pub fn api_calls(&self, source: &str, operation: &'static str, total: u64) {
        let c = self.api_calls.get_or_create(&CallLabel {
            source: source.to_owned(),
            operation,
        });
        c.inc_by(total.saturating_sub(c.get()));
    }

    /// The proxy answered with `status`.
    pub fn proxy_request(&self, status: u16) {
        if status == 200 {
            self.proxy_ok.inc();
        } else {
            self.proxy_requests
                .get_or_create(&StatusLabel { status })
                .inc();
        }
    }

    /// The proxy answered from a ready body.
    pub fn proxy_cache_hit(&self) {
        self.proxy_cache_hits.inc();
    }

    /// A `refreshNow` fetch finished.
    pub fn proxy_refresh(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.proxy_refreshes
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Whether every secret has been written once.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// True once every secret has been written.
    pub fn is_ready(&self) -> bool {
        self.ready.get() == 1
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        self.registry.render()
    }
}

impl Health for Metrics {
    fn ready(&self) -> bool {
        self.is_ready()
    }

    fn render(&self) -> String {
        Metrics::render(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_there_from_the_start_and_the_proxy_only_with_one() {
        let config = Config::parse(
            "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - name: db\n    kv: { mount: secret, path: db }\n    on_change: [ { signal: { process: app, signal: HUP } } ]\n",
            std::path::Path::new("/"),
        )
        .unwrap();
        let m = Metrics::new(false);
        m.declare(&config);
        let text = m.render();
        for line in [
            "ramsecrets_secret_fetch_errors_total{secret=\"db\"} 0",
            "ramsecrets_secret_write_errors_total{secret=\"db\"} 0",
            "ramsecrets_secret_renewals_total{secret=\"db\"} 0",
            "ramsecrets_secret_writes_total{secret=\"db\"} 0",
            "ramsecrets_backend_request_duration_seconds_count{source=\"file\"} 0",
            "ramsecrets_on_change_actions_total{secret=\"db\",action=\"signal\",result=\"error\"} 0",
            "ramsecrets_ready 0",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert!(!text.contains("proxy"), "{text}");
        let with_proxy = Metrics::new(true).render();
        for line in [
            "ramsecrets_proxy_requests_total{status=\"200\"} 0",
            "ramsecrets_proxy_cache_hits_total 0",
            "ramsecrets_proxy_refreshes_total{result=\"error\"} 0",
        ] {
            assert!(with_proxy.contains(line), "{line} not in\n{with_proxy}");
        }
    }

    #[test]
    fn versions_and_leases_are_not_served_on_the_pod_network() {
        let served = |listen: &str| {
            let config = Config::parse(
                &format!("sources:\n  - file: {{ path: x }}\noutput: {{ dir: /x }}\nhealth: {{ listen: \"{listen}\" }}\nsecrets:\n  - name: db\n    read: database/creds/app\n"),
                std::path::Path::new("/"),
            )
            .unwrap();
            let m = Metrics::of(&config);
            m.declare(&config);
            m.version("db", Some("serial-7f"), Some("database/creds/app/x1"));
            m.render()
        };
        let text = served("127.0.0.1:8099");
        assert!(
            text.contains("ramsecrets_secret_version{secret=\"db\",version=\"serial-7f\",lease=\"database/creds/app/x1\"} 1"),
            "{text}"
        );
        for listen in ["0.0.0.0:8099", "[::]:8099", "10.1.2.3:8099"] {
            let text = served(listen);
            assert!(
                !text.contains("secret_version")
                    && !text.contains("x1")
                    && !text.contains("serial-7f"),
                "{listen}: {text}"
            );
            assert!(
                text.contains("ramsecrets_secret_writes_total{secret=\"db\"} 0"),
                "{text}"
            );
        }
    }

    #[test]
    fn renders_counters_and_expiry() {
        let m = Metrics::new(true);
        m.error("db");
        m.wrote("db");
        m.expires(
            "db",
            SystemTime::now() + std::time::Duration::from_secs(100),
        );
        m.set_ready(true);
        m.proxy_request(200);
        m.proxy_request(200);
        m.proxy_request(403);
        let text = m.render();
        assert!(
            text.contains("ramsecrets_proxy_requests_total{status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ramsecrets_proxy_requests_total{status=\"403\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ramsecrets_secret_fetch_errors_total{secret=\"db\"} 1"),
            "{text}"
        );
        m.write_error("db");
        let text = m.render();
        assert!(
            text.contains("ramsecrets_secret_write_errors_total{secret=\"db\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ramsecrets_secret_fetch_errors_total{secret=\"db\"} 1"),
            "a write error is not a fetch error: {text}"
        );
        assert!(text.contains("ramsecrets_ready 1"), "{text}");
        assert!(
            text.contains("ramsecrets_secret_expiry_seconds{secret=\"db\"} 9"),
            "{text}"
        );
    }

    #[test]
    fn one_version_series_per_secret() {
        let m = Metrics::new(false);
        m.version("db", Some("3"), None);
        m.version("db", Some("4"), None);
        m.version("creds", None, Some("database/creds/app/abc"));
        let text = m.render();
        assert!(
            text.contains("ramsecrets_secret_version{secret=\"db\",version=\"4\",lease=\"\"} 1"),
            "{text}"
        );
        assert!(!text.contains("version=\"3\""), "{text}");
        assert!(
            text.contains("secret=\"creds\",version=\"\",lease=\"database/creds/app/abc\"} 1"),
            "{text}"
        );
    }
}
