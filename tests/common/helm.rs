//! The Helm chart `helm/ramsecrets` through Helm's own Go SDK (`tests/helm/chart.py`, which
//! drives libhelm_c from PyPI helm-python-sdk, installed by `scripts/testbed`): lint reports
//! and rendered documents as JSON values.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::{json, Value};

use super::repo;

/// The release name every render uses.
pub const RELEASE: &str = "rs";
/// The namespace the chart is rendered for.
pub const NAMESPACE: &str = "ramsecrets";

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    repo().join("helm/ramsecrets")
}

fn helm(action: &str, values: &Value) -> std::process::Output {
    let py = repo().join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run `bash scripts/testbed`",
        py.display()
    );
    let mut child = Command::new(py)
        .arg(repo().join("tests/helm/chart.py"))
        .args([action, chart_dir().to_str().unwrap(), NAMESPACE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(values.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Values for the API-server tests in `mode`: Vault and AWS sources (so that every example
/// finds its own) and a ServiceMonitor.
pub fn values(mode: &str) -> Value {
    json!({
        "tls": {"mode": mode},
        "sources": [
            {"name": "vault", "vault": {"address": "https://vault.vault.svc:8200",
                "auth": {"kubernetes": {"mount": "kubernetes", "role": "default"}}}},
            {"name": "aws", "aws_secrets_manager": {"region": "eu-west-1"}}
        ],
        "metrics": {"serviceMonitor": {"enabled": true}}
    })
}

/// One finding of `helm lint`.
#[derive(Debug, Deserialize)]
pub struct LintMessage {
    /// 1 info, 2 warning, 3 error.
    pub severity: u8,
    pub path: String,
    pub error: String,
}

/// `helm lint --strict` of the chart with `values`: every finding.
pub fn lint(values: &Value) -> Vec<LintMessage> {
    #[derive(Deserialize)]
    struct Report {
        messages: Vec<LintMessage>,
    }
    let o = helm("lint", values);
    assert!(
        o.status.success(),
        "helm lint could not run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice::<Report>(&o.stdout)
        .unwrap()
        .messages
}

/// What `helm template` made of the chart.
pub struct Rendered {
    /// Every non-empty document, in template order.
    pub docs: Vec<Value>,
    /// NOTES.txt.
    pub notes: String,
}

/// `helm template` of the chart with `values`, or Helm's message when it refuses them.
pub fn render(values: &Value) -> Result<Rendered, String> {
    let o = helm("render", values);
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let files: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&o.stdout).unwrap();
    let mut docs = Vec::new();
    let mut notes = String::new();
    for (path, text) in files {
        if path.ends_with("NOTES.txt") {
            notes = text;
            continue;
        }
        let values: Vec<Value> = serde_saphyr::from_str_multiple(&text)
            .unwrap_or_else(|e| panic!("{path} is not YAML: {e}\n{text}"));
        docs.extend(values.into_iter().filter(|v| !v.is_null()));
    }
    Ok(Rendered { docs, notes })
}

impl Rendered {
    /// Every document of `kind`.
    pub fn all(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    /// The one document of `kind`.
    pub fn one(&self, kind: &str) -> &Value {
        match self.all(kind).as_slice() {
            [one] => one,
            many => panic!("{} documents of kind {kind}, not one", many.len()),
        }
    }

    /// The document of `kind` named `name`.
    pub fn named(&self, kind: &str, name: &str) -> &Value {
        self.all(kind)
            .into_iter()
            .find(|d| d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name}"))
    }

    /// The sorted kinds of the documents.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .docs
            .iter()
            .map(|d| d["kind"].as_str().unwrap().to_string())
            .collect();
        kinds.sort();
        kinds
    }

    /// The injector's config file, parsed.
    pub fn config(&self) -> Value {
        let text = self.one("ConfigMap")["data"]["config.yaml"]
            .as_str()
            .unwrap();
        serde_saphyr::from_str(text).unwrap()
    }

    /// The injector's pod spec.
    pub fn pod_spec(&self) -> &Value {
        &self.one("Deployment")["spec"]["template"]["spec"]
    }
}

/// Whether `doc` is of a kind that cert-manager or prometheus-operator defines.
pub fn is_custom_resource(doc: &Value) -> bool {
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    api.starts_with("cert-manager.io/") || api.starts_with("monitoring.coreos.com/")
}

/// Checks cert-manager and prometheus-operator documents against those projects' published
/// CRD schemas (`tests/helm/crds.mjs`): its report, or the report of what is invalid.
pub fn check_published_schemas(docs: &[&Value]) -> Result<String, String> {
    let models = repo().join(".testbed/node");
    assert!(
        models
            .join("node_modules/@kubernetes-models/cert-manager")
            .exists(),
        "{} lacks the CRD models: run `bash scripts/testbed`",
        models.display()
    );
    let mut child = Command::new("node")
        .arg(repo().join("tests/helm/crds.mjs"))
        .arg(models)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (scripts/testbed installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(docs).unwrap().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if o.status.success() {
        Ok(report)
    } else {
        Err(report)
    }
}
