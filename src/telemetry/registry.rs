//! The one metrics registry type of a process, the sidecar's
//! ([`super::metrics`]) or the injector's ([`super::admission`]): every
//! series is named `ramsecrets_…` and rendered as OpenMetrics text for the
//! one `/metrics` route of [`super::health`].

use prometheus_client::registry::Metric;

/// Metrics registered under the `ramsecrets` prefix.
pub struct Registry(prometheus_client::registry::Registry);

impl Default for Registry {
    fn default() -> Self {
        Registry(prometheus_client::registry::Registry::with_prefix(
            "ramsecrets",
        ))
    }
}

impl Registry {
    /// Adds `metric` as `ramsecrets_<name>`, described by `help`.
    pub fn register(&mut self, name: &str, help: &str, metric: impl Metric) {
        self.0.register(name, help, metric);
    }

    /// The OpenMetrics text of every registered metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.0);
        text
    }
}
