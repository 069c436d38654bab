//! The chart's monitoring: the PrometheusRule and the Grafana dashboard are off by default;
//! when on, the rule matches prometheus-operator's published schema, the dashboard is JSON
//! Grafana's sidecar finds by its label, and every metric either names is one that
//! ramsecrets serves (the generated metrics reference). `chart_dry_run` has the API server
//! judge both documents.

mod common;

use common::helm::{self, Rendered};
use common::*;
use serde_json::{json, Value};

fn rendered(values: &Value) -> Rendered {
    helm::render(values).unwrap_or_else(|e| panic!("helm refused {values}: {e}"))
}

fn on() -> Value {
    json!({"metrics": {"prometheusRule": {"enabled": true, "labels": {"release": "prom"}},
                       "grafanaDashboard": {"enabled": true}}})
}

/// The metric names in PromQL `expr`.
fn metrics_in(expr: &str) -> Vec<String> {
    expr.match_indices("ramsecrets_")
        .map(|(at, _)| {
            expr[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect()
}

/// Fails naming each metric of `exprs` that ramsecrets does not serve.
fn served(exprs: &[String]) {
    let reference = std::fs::read_to_string(repo().join("docs/reference/metrics.md")).unwrap();
    let unknown: Vec<String> = exprs
        .iter()
        .flat_map(|e| metrics_in(e))
        .filter(|name| {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            !reference.contains(&format!("`{family}`"))
        })
        .collect();
    assert!(unknown.is_empty(), "not served: {unknown:?}");
    assert!(!exprs.is_empty());
}

#[test]
fn monitoring_is_off_by_default() {
    let r = rendered(&json!({}));
    assert!(r.all("PrometheusRule").is_empty());
    assert_eq!(r.all("ConfigMap").len(), 1, "only the injector's config");
}

#[test]
fn the_prometheus_rule_alerts_on_metrics_ramsecrets_serves() {
    let r = rendered(&on());
    let rule = r.one("PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    let report = helm::check_published_schemas(&[rule]).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.starts_with("ok PrometheusRule"), "{report}");
    let rules: Vec<&Value> = rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    let alerts: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    for wanted in [
        "RamsecretsSecretExpiresSoon",
        "RamsecretsFetchErrors",
        "RamsecretsInjectorDenials",
        "RamsecretsInjectorSlow",
    ] {
        assert!(alerts.contains(&wanted), "{wanted} in {alerts:?}");
    }
    let exprs: Vec<String> = rules
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();
    served(&exprs);
    assert!(
        exprs[0].ends_with("< 600"),
        "the default threshold: {}",
        exprs[0]
    );
    // Prometheus' own template braces survive Helm's.
    let summary = rules[0]["annotations"]["summary"].as_str().unwrap();
    assert!(summary.contains("{{ $labels.secret }}"), "{summary}");
    assert!(helm::lint(&on()).iter().all(|m| m.severity < 2));
}

#[test]
fn the_grafana_dashboard_is_found_by_its_label_and_charts_served_metrics() {
    let values =
        json!({"metrics": {"grafanaDashboard": {"enabled": true, "namespace": "monitoring"}}});
    let r = rendered(&values);
    let cm = r
        .all("ConfigMap")
        .into_iter()
        .find(|c| {
            c["metadata"]["name"]
                .as_str()
                .unwrap()
                .ends_with("-dashboard")
        })
        .expect("the dashboard's ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["ramsecrets.json"].as_str().unwrap()).unwrap();
    assert_eq!(dashboard["uid"], "ramsecrets");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    served(&exprs);
    // Each panel uses the dashboard's data source variable.
    assert!(dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["datasource"]["uid"] == "${datasource}"));
}
