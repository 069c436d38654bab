//! The series of every secret, kept together: one entry per secret in a
//! table sorted by name, holding its counters, gauges and identifiers. A
//! `Family` per series kept a hash-map bucket and an allocated counter for
//! each secret in each of them (0.8 KiB a secret over seven series); the
//! sidecar holds every secret's series, so their memory grows with the config.
//! Each series is rendered by a [`View`] of the table, with the text its
//! family gave.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// One series of a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Series {
    /// Failed fetches or renewals (counter).
    FetchErrors,
    /// Failed writes of its files (counter).
    WriteErrors,
    /// Writes of its files (counter).
    Writes,
    /// Lease renewals (counter).
    Renewals,
    /// Unix time of the last success (gauge).
    LastSuccess,
    /// Seconds until its lease or certificate ends (gauge, computed when rendered).
    Expiry,
    /// 1 for the version and lease it holds (gauge labelled with them).
    Version,
}

impl Series {
    /// The series a declared secret shows from the start, at 0.
    const DECLARED: [Series; 5] = [
        Series::FetchErrors,
        Series::WriteErrors,
        Series::Writes,
        Series::Renewals,
        Series::LastSuccess,
    ];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The index of a counter in [`Entry::counts`]; `None` for a gauge.
    fn counter(self) -> Option<usize> {
        match self {
            Series::FetchErrors => Some(0),
            Series::WriteErrors => Some(1),
            Series::Writes => Some(2),
            Series::Renewals => Some(3),
            Series::LastSuccess | Series::Expiry | Series::Version => None,
        }
    }
}

/// The series of one secret.
#[derive(Debug)]
struct Entry {
    name: Arc<str>,
    /// Bit `1 << series`: the series is shown.
    shown: u8,
    /// The counters, by [`Series::counter`].
    counts: [u64; 4],
    last_success: f64,
    expires: Option<SystemTime>,
    /// The version and lease labels, one after the other, split at `split`.
    ids: Option<Box<str>>,
    split: u32,
}

impl Entry {
    fn new(name: &str) -> Self {
        Entry {
            name: Arc::from(name),
            shown: 0,
            counts: [0; 4],
            last_success: 0.0,
            expires: None,
            ids: None,
            split: 0,
        }
    }

    fn ids(&self) -> (&str, &str) {
        let ids = self.ids.as_deref().unwrap_or_default();
        ids.split_at(self.split as usize)
    }
}

/// Every secret's series, sorted by name.
#[derive(Debug, Default)]
pub struct Table(Mutex<Vec<Entry>>);

impl Table {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the entry of `name`, made (showing nothing) on first use.
    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut entries = self.lock();
        let i = match entries.binary_search_by(|e| (*e.name).cmp(name)) {
            Ok(i) => i,
            Err(i) => {
                entries.insert(i, Entry::new(name));
                i
            }
        };
        f(&mut entries[i])
    }

    /// The shared copy of the name `name`, for labels of other metrics.
    pub fn name(&self, name: &str) -> Arc<str> {
        self.with(name, |e| e.name.clone())
    }

    /// Shows the counters and the last success of each of `names` (at 0
    /// until something happens).
    pub fn declare<'a>(&self, names: impl Iterator<Item = &'a str> + Clone) {
        let mut entries = self.lock();
        // Added at the end, then sorted once: a config of thousands.
        let known = entries.len();
        for name in names.clone() {
            if entries[..known]
                .binary_search_by(|e| (*e.name).cmp(name))
                .is_err()
            {
                entries.push(Entry::new(name));
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.dedup_by(|a, b| a.name == b.name);
        entries.shrink_to_fit();
        let shown = Series::DECLARED.iter().fold(0, |s, d| s | d.bit());
        for name in names {
            if let Ok(i) = entries.binary_search_by(|e| (*e.name).cmp(name)) {
                entries[i].shown |= shown;
            }
        }
    }

    /// Adds one to counter `series` of `name` (nothing for a gauge).
    pub fn count(&self, name: &str, series: Series) {
        let Some(k) = series.counter() else {
            return;
        };
        self.with(name, |e| {
            e.counts[k] += 1;
            e.shown |= series.bit();
        });
    }

    /// Sets the last success of `name` to `at` (Unix seconds).
    pub fn succeeded(&self, name: &str, at: f64) {
        self.with(name, |e| {
            e.last_success = at;
            e.shown |= Series::LastSuccess.bit();
        });
    }

    /// The lease or certificate of `name` ends at `at`.
    pub fn expires(&self, name: &str, at: SystemTime) {
        self.with(name, |e| {
            e.expires = Some(at);
            e.shown |= Series::Expiry.bit();
        });
    }

    /// `name` holds `version` under `lease` (empty: none).
    pub fn version(&self, name: &str, version: &str, lease: &str) {
        self.with(name, |e| {
            e.shown |= Series::Version.bit();
            if e.ids() == (version, lease) {
                return;
            }
            let both = [version, lease].concat();
            e.ids = (!both.is_empty()).then(|| both.into_boxed_str());
            // A label longer than 4 GiB is not one a backend gives.
            e.split = u32::try_from(version.len()).unwrap_or(u32::MAX);
        });
    }

    /// The metric that renders `series` of every secret.
    pub fn view(self: &Arc<Self>, series: Series) -> View {
        View {
            table: self.clone(),
            series,
        }
    }
}

/// One series of every secret, as a metric to register.
#[derive(Debug)]
pub struct View {
    table: Arc<Table>,
    series: Series,
}

impl EncodeMetric for View {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let now = SystemTime::now();
        let entries = self.table.lock();
        for e in entries.iter().filter(|e| e.shown & self.series.bit() != 0) {
            let secret = ("secret", &*e.name);
            if let Some(k) = self.series.counter() {
                encoder
                    .encode_family(&[secret])?
                    .encode_counter::<NoLabelSet, _, u64>(&e.counts[k], None)?;
                continue;
            }
            match self.series {
                Series::Version => {
                    let (version, lease) = e.ids();
                    let labels = [secret, ("version", version), ("lease", lease)];
                    encoder.encode_family(&labels)?.encode_gauge(&1i64)?;
                }
                Series::LastSuccess => {
                    encoder
                        .encode_family(&[secret])?
                        .encode_gauge(&e.last_success)?;
                }
                Series::Expiry => {
                    let left = match e.expires.map(|at| at.duration_since(now)) {
                        Some(Ok(d)) => d.as_secs_f64(),
                        Some(Err(e)) => -e.duration().as_secs_f64(),
                        None => 0.0,
                    };
                    encoder.encode_family(&[secret])?.encode_gauge(&left)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        match self.series.counter() {
            Some(_) => MetricType::Counter,
            None => MetricType::Gauge,
        }
    }

    fn is_empty(&self) -> bool {
        let bit = self.series.bit();
        !self.table.lock().iter().any(|e| e.shown & bit != 0)
    }
}

#[cfg(test)]
mod tests;
