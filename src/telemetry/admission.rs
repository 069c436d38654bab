//! Prometheus metrics of the injector: AdmissionReviews answered, by result,
//! and the time each decision took. Labels are results, never pod content.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use super::health::Health;
use super::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    result: &'static str,
}

/// Every metric the injector exports.
pub struct Admission {
    registry: Registry,
    reviews: Family<Outcome, Counter>,
    seconds: Histogram,
}

impl Default for Admission {
    fn default() -> Self {
        let mut registry = Registry::default();
        let reviews = Family::<Outcome, Counter>::default();
        registry.register(
            "admission_reviews",
            "AdmissionReviews answered, by result: patched, unchanged, denied, invalid",
            reviews.clone(),
        );
        let seconds = Histogram::new([0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25]);
        registry.register(
            "admission_duration_seconds",
            "Time to decide one AdmissionReview, from its body read to its answer",
            seconds.clone(),
        );
        // Every result's series is there from the start, at 0, so an alert on an
        // increase of `denied` sees the first one.
        for result in ["patched", "unchanged", "denied", "invalid"] {
            drop(reviews.get_or_create(&Outcome { result }));
        }
        Admission {
            registry,
            reviews,
            seconds,
        }
    }
}

impl Admission {
    /// One review answered with `result` after `took`.
    pub fn answered(&self, result: &'static str, took: Duration) {
        self.seconds.observe(took.as_secs_f64());
        self.reviews.get_or_create(&Outcome { result }).inc();
    }
}

impl Health for Admission {
    /// The injector is ready as soon as it listens.
    fn ready(&self) -> bool {
        true
    }

    fn render(&self) -> String {
        self.registry.render()
    }
}

/// The `/metrics` text of an injector that has answered no review yet: the book's
/// metrics reference lists its series (`tests/reference.rs`).
pub fn reference_text() -> String {
    Admission::default().render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_result_is_counted_from_zero() {
        let m = Admission::default();
        assert!(m
            .render()
            .contains("ramsecrets_admission_reviews_total{result=\"denied\"} 0\n"));
        m.answered("denied", Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains("ramsecrets_admission_reviews_total{result=\"denied\"} 1\n"));
        assert!(text.contains("ramsecrets_admission_duration_seconds_count 1\n"));
    }
}
