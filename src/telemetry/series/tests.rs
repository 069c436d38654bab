use std::time::Duration;

use super::*;
use crate::telemetry::registry::Registry;

fn render(table: &Arc<Table>) -> String {
    let mut registry = Registry::default();
    registry.register("writes", "w", table.view(Series::Writes));
    registry.register("errors", "e", table.view(Series::FetchErrors));
    registry.register("last", "l", table.view(Series::LastSuccess));
    registry.register("expiry", "x", table.view(Series::Expiry));
    registry.register("version", "v", table.view(Series::Version));
    registry.render()
}

#[test]
fn declared_secrets_show_their_counters_at_zero_in_name_order() {
    let table = Arc::new(Table::default());
    table.declare(["b", "a"].into_iter());
    table.declare(["c", "a"].into_iter());
    let text = render(&table);
    let writes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ramsecrets_writes_total"))
        .collect();
    assert_eq!(
        writes,
        [
            "ramsecrets_writes_total{secret=\"a\"} 0",
            "ramsecrets_writes_total{secret=\"b\"} 0",
            "ramsecrets_writes_total{secret=\"c\"} 0",
        ]
    );
    assert!(text.contains("ramsecrets_last{secret=\"a\"} 0"), "{text}");
    // Nothing has an expiry or a version yet: those metrics are not shown.
    assert!(!text.contains("expiry"), "{text}");
    assert!(!text.contains("version"), "{text}");
}

#[test]
fn a_secret_not_declared_shows_only_what_happened_to_it() {
    let table = Arc::new(Table::default());
    table.count("db", Series::FetchErrors);
    table.count("db", Series::FetchErrors);
    // A gauge is not counted.
    table.count("db", Series::Expiry);
    let text = render(&table);
    assert!(
        text.contains("ramsecrets_errors_total{secret=\"db\"} 2"),
        "{text}"
    );
    assert!(!text.contains("ramsecrets_writes_total{"), "{text}");
    assert!(!text.contains("expiry"), "{text}");
    assert!(Arc::ptr_eq(&table.name("db"), &table.name("db")));
}

#[test]
fn one_version_series_a_secret_and_the_expiry_counted_down() {
    let table = Arc::new(Table::default());
    table.version("db", "3", "");
    table.version("db", "4", "");
    table.version("creds", "", "database/creds/app/abc");
    table.expires("creds", SystemTime::now() + Duration::from_secs(100));
    let text = render(&table);
    assert!(
        text.contains("ramsecrets_version{secret=\"db\",version=\"4\",lease=\"\"} 1"),
        "{text}"
    );
    assert!(!text.contains("version=\"3\""), "{text}");
    assert!(
        text.contains(
            "ramsecrets_version{secret=\"creds\",version=\"\",lease=\"database/creds/app/abc\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("ramsecrets_expiry{secret=\"creds\"} 9"),
        "{text}"
    );
}
