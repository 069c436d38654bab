//! The book's code blocks do what they say (the markers are in
//! `tests/common/book.rs`): every YAML config block is a config ramsecrets accepts,
//! every values block matches the chart's values schema, every `file` source example
//! reads, Kubernetes blocks are YAML objects, the getting-started and proxy
//! commands and the Kubernetes guide's Vault-side commands (against OpenBao and a
//! real API server) run as written, every metric a page names is served, and the
//! architecture page names every module.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::book::{all_blocks, blocks, Block};
use common::kube::{ControlPlane, ISSUER};
use common::{
    assert_exit, file, free_port, init, python_report, repo, scratch, text, wait_until, Bao, Tmpfs,
};

const YAML_KINDS: &[&str] = &[
    "config",
    "config-part",
    "values",
    "kubernetes",
    "file-source",
];
const SH_KINDS: &[&str] = &["run", "serve", "vault", "example"];

fn yaml_blocks(kind: &str) -> Vec<Block> {
    all_blocks()
        .into_iter()
        .filter(|b| b.lang == "yaml" && b.kind.as_deref() == Some(kind))
        .collect()
}

#[test]
fn every_yaml_and_sh_block_says_what_it_is() {
    let mut wrong = Vec::new();
    for b in all_blocks() {
        let kinds = match b.lang.as_str() {
            "yaml" | "yml" => YAML_KINDS,
            "sh" | "bash" | "shell" | "console" => SH_KINDS,
            _ => continue,
        };
        match b.kind.as_deref() {
            Some(k) if !kinds.contains(&k) => wrong.push(format!("{}: unknown kind `{k}`", b.at())),
            Some("example") if b.detail.is_empty() => {
                wrong.push(format!("{}: an example says why it is not run", b.at()))
            }
            Some(_) => {}
            None => wrong.push(format!(
                "{}: a ```{} block without a `<!-- {}: KIND -->` line before it",
                b.at(),
                b.lang,
                b.lang
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn parse_config(b: &Block, text: &str) {
    if let Err(problems) = ramsecrets::config::Config::parse(text, &repo().join("examples")) {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        panic!(
            "{}: not a valid config:\n{}\n---\n{text}",
            b.at(),
            list.join("\n")
        );
    }
}

#[test]
fn config_blocks_are_configs_ramsecrets_accepts() {
    let whole = yaml_blocks("config");
    for b in &whole {
        parse_config(b, &b.text);
    }
    // Parts get what they lack from a small config: a source, an output and a secret.
    let base: Value = serde_saphyr::from_str(
        "sources: [ { file: { path: dev-secrets.yaml } } ]\noutput: { dir: /run/secrets/app }\nsecrets: [ { name: base, kv: { mount: secret, path: base } } ]\n",
    )
    .unwrap();
    let parts = yaml_blocks("config-part");
    for b in &parts {
        let Value::Object(mut part) = serde_saphyr::from_str(&b.text).unwrap() else {
            panic!("{}: a config part is a mapping of sections", b.at());
        };
        for (k, v) in base.as_object().unwrap() {
            if !part.contains_key(k) {
                part.insert(k.clone(), v.clone());
            }
        }
        parse_config(b, &serde_saphyr::to_string(&part).unwrap());
    }
    assert!(
        whole.len() + parts.len() >= 5,
        "too few config blocks found"
    );
}

#[test]
fn a_config_the_book_gets_wrong_is_caught() {
    // The check itself: a key the schema does not know is refused.
    let b = &yaml_blocks("config")[0];
    let wrong = b.text.replace("sources:", "sourcez:");
    assert!(ramsecrets::config::Config::parse(&wrong, &repo().join("examples")).is_err());
}

#[test]
fn values_blocks_match_the_chart_values_schema() {
    let values = yaml_blocks("values");
    assert!(!values.is_empty(), "no values block found");
    let mut script = format!(
        "import json, yaml, jsonschema\nv = jsonschema.Draft202012Validator(json.load(open({:?})))\n",
        repo().join("helm/ramsecrets/values.schema.json").display()
    );
    for b in &values {
        script.push_str(&format!(
            "errors = [e.message for e in v.iter_errors(yaml.safe_load({:?}))]\nprint({:?}, errors or 'ok')\n",
            b.text,
            b.at()
        ));
    }
    // The check itself: a misspelt value is refused.
    script.push_str(
        "print('wrong', [e.message for e in v.iter_errors({'injection': {'audiance': 'x'}})] and 'refused')\n",
    );
    let report = python_report(&script);
    for line in report.lines() {
        assert!(line.ends_with(" ok") || line == "wrong refused", "{report}");
    }
    assert_eq!(report.lines().count(), values.len() + 1, "{report}");
}

#[test]
fn kubernetes_blocks_are_yaml_objects() {
    let blocks = yaml_blocks("kubernetes");
    assert!(!blocks.is_empty());
    for b in &blocks {
        let docs: Vec<Value> =
            serde_saphyr::from_str_multiple(&b.text).unwrap_or_else(|e| panic!("{}: {e}", b.at()));
        for v in docs {
            assert!(v.is_object(), "{}: not a mapping", b.at());
        }
    }
}

#[test]
fn file_source_examples_are_read_by_check() {
    let blocks = yaml_blocks("file-source");
    assert!(!blocks.is_empty());
    for b in &blocks {
        let work = scratch();
        let out = Tmpfs::new("1m");
        file(work.path(), "dev.yaml", &b.text);
        let v: Value = serde_saphyr::from_str(&b.text).unwrap();
        let mut secrets = String::new();
        for (i, (address, fields)) in v.as_object().unwrap().iter().enumerate() {
            for (j, field) in fields.as_object().unwrap().keys().enumerate() {
                secrets.push_str(&format!(
                    "  - {{ name: s{i}-{j}, read: {}, key: {} }}\n",
                    address, field
                ));
            }
        }
        let cfg = file(
            work.path(),
            "c.yaml",
            &format!(
                "sources: [ {{ file: {{ path: dev.yaml }} }} ]\noutput: {{ dir: {} }}\nsecrets:\n{secrets}",
                out.path().display()
            ),
        );
        let o = common::ramsecrets(&["check", "--config", cfg.to_str().unwrap()]);
        assert_exit(&o, 0);
    }
}

// ---- shell blocks ----

/// A page's shell blocks, run in order in a scratch copy of `examples/`, with
/// `subst` applied to the blocks and the copied examples (fixed ports and paths
/// become free ones), `HOME` in the scratch directory, and `ramsecrets` (the one
/// under test) and `bao` on `PATH`.
struct Session {
    dir: tempfile::TempDir,
    subst: Vec<(String, String)>,
    env: Vec<(String, String)>,
    serving: Vec<Child>,
}

impl Session {
    fn new(subst: Vec<(String, String)>) -> Session {
        let dir = scratch();
        let s = Session {
            dir,
            subst,
            env: Vec::new(),
            serving: Vec::new(),
        };
        s.copy(&repo().join("examples"), &s.dir.path().join("examples"));
        s
    }

    fn apply(&self, text: &str) -> String {
        self.subst
            .iter()
            .fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
    }

    fn copy(&self, from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                self.copy(&path, &target);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                std::fs::write(&target, self.apply(&text)).unwrap();
            }
        }
    }

    fn command(&self, script: &str) -> Command {
        let bin = Path::new(env!("CARGO_BIN_EXE_ramsecrets"))
            .parent()
            .unwrap();
        let path = format!(
            "{}:{}:{}",
            bin.display(),
            repo().join(".venv/bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("bash");
        c.arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(self.apply(script))
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("PATH", path)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_ADDR")
            .env_remove("BAO_TOKEN")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs the page's blocks of `kinds` in order: `run` and `vault` blocks must exit 0;
    /// a `serve` block runs until the next of them has succeeded (tried again while the
    /// server starts); a `yaml: config file=NAME` block is saved as NAME.
    fn run_page(&mut self, page: &str, kinds: &[&str]) -> usize {
        let mut ran = 0;
        let mut starting = false;
        for b in blocks(page) {
            match (b.lang.as_str(), b.kind.as_deref()) {
                ("yaml", Some("config")) => {
                    if let Some(name) = b.detail.strip_prefix("file=") {
                        file(self.dir.path(), name, &self.apply(&b.text));
                    }
                }
                ("sh", Some("serve")) => {
                    let child = self
                        .command(&b.text)
                        .process_group(0)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap();
                    self.serving.push(child);
                    starting = true;
                }
                ("sh", Some(k)) if kinds.contains(&k) => {
                    let mut last = None;
                    wait_until(
                        Duration::from_secs(if starting { 120 } else { 0 }),
                        &format!("{} to succeed once the server answers", b.at()),
                        || {
                            let o = self.command(&b.text).output().unwrap();
                            let ok = o.status.success();
                            last = Some(o);
                            ok || !starting
                        },
                    );
                    let o = last.unwrap();
                    assert!(o.status.success(), "{}:\n{}\n{}", b.at(), b.text, text(&o));
                    starting = false;
                    ran += 1;
                }
                _ => {}
            }
        }
        ran
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for c in &mut self.serving {
            // The block's shell leads its own process group: stop what it started too.
            if let Some(group) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
            }
            let _ = c.wait();
        }
    }
}

/// Two free loopback ports in a row (OpenBao's dev server also takes the next one).
fn free_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

#[test]
fn getting_started_runs_as_written() {
    let dev = Tmpfs::new("1m");
    let vault = Tmpfs::new("1m");
    let mut s = Session::new(vec![
        (
            "/dev/shm/ramsecrets-dev".into(),
            dev.path().display().to_string(),
        ),
        (
            "/dev/shm/ramsecrets-vault".into(),
            vault.path().display().to_string(),
        ),
        (
            "127.0.0.1:2773".into(),
            format!("127.0.0.1:{}", free_port()),
        ),
        (
            "127.0.0.1:8200".into(),
            format!("127.0.0.1:{}", free_pair()),
        ),
    ]);
    let ran = s.run_page("getting-started.md", &["run"]);
    assert_eq!(ran, 4, "the page's run blocks");
    assert_eq!(dev.read("db-password"), "dev-only-password");
    assert_eq!(vault.read("db-password"), "dev-only-password");
    assert_eq!(
        vault.read("db.json"),
        r#"{"password":"dev-only-password","username":"app"}"#
    );
}

#[test]
fn the_proxy_page_runs_as_written() {
    let dev = Tmpfs::new("1m");
    let mut s = Session::new(vec![
        (
            "/dev/shm/ramsecrets-dev".into(),
            dev.path().display().to_string(),
        ),
        (
            "127.0.0.1:2773".into(),
            format!("127.0.0.1:{}", free_port()),
        ),
    ]);
    assert_eq!(s.run_page("proxy.md", &["run"]), 1);
    assert_eq!(dev.read("db-password"), "dev-only-password");
}

#[test]
fn the_architecture_page_names_every_module() {
    let page = std::fs::read_to_string(common::book::docs().join("architecture.md")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(repo().join("src")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let named = match path.is_dir() {
            true => format!("`src/{name}/`"),
            false if name == "lib.rs" => continue,
            false => format!("`src/{name}`"),
        };
        // A module with a folder of its own children (output.rs and output/) is named once.
        let sibling = format!("`src/{name}.rs`");
        if !page.contains(&named) && (!path.is_dir() || !page.contains(&sibling)) {
            missing.push(named);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/architecture.md does not name {missing:?}"
    );
}

#[test]
fn every_metric_the_book_names_is_served() {
    // docs/reference/metrics.md is generated from the registry and checked by tests/reference.rs.
    let served =
        std::fs::read_to_string(common::book::docs().join("reference/metrics.md")).unwrap();
    let mut unknown = Vec::new();
    for page in common::book::pages() {
        let text = std::fs::read_to_string(common::book::docs().join(&page)).unwrap();
        for (at, _) in text.match_indices("ramsecrets_") {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue; // part of a longer name, such as a test's
            }
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            if !served.contains(&format!("`{family}`")) {
                unknown.push(format!("docs/{page}: {name}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics the registry does not serve: {unknown:?}"
    );
}

#[test]
fn the_kubernetes_guide_sets_up_vaults_side() {
    const NS: &str = "shop";
    let cp = ControlPlane::start();
    cp.service_account(NS, "orders");
    cp.service_account("vault", "vault-reviewer");
    let (status, body) = cp.call(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        Some(serde_json::json!({
            "metadata": { "name": "vault-reviewer" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator" },
            "subjects": [ { "kind": "ServiceAccount", "name": "vault-reviewer", "namespace": "vault" } ]
        })),
    );
    assert!(status == 201 || status == 409, "{status}: {body}");
    let bao = Bao::start();
    bao.kv2_put("orders/settings", serde_json::json!({ "colour": "blue" }));

    let mut s = Session::new(Vec::new());
    s.env = vec![
        ("VAULT_ADDR".into(), bao.addr.clone()),
        ("VAULT_TOKEN".into(), bao.token.clone()),
        ("KUBERNETES_HOST".into(), cp.url.clone()),
        (
            "KUBERNETES_CA_FILE".into(),
            cp.ca_file.display().to_string(),
        ),
        (
            "REVIEWER_JWT".into(),
            cp.token("vault", "vault-reviewer", ISSUER),
        ),
    ];
    assert!(s.run_page("guides/kubernetes.md", &["vault"]) >= 1);

    // A pod's projected token for the audience the injector asks for logs in as `orders`
    // and reads its secret; one for another audience is refused.
    let work = scratch();
    let config = |token: &str| {
        let token_file = file(work.path(), "token", token);
        let out = Tmpfs::new("1m");
        let cfg = format!(
            "sources:\n  - vault:\n      address: {}\n      auth: {{ kubernetes: {{ role: orders, token_file: {} }} }}\noutput: {{ dir: {} }}\nsecrets:\n  - {{ name: settings, kv: {{ mount: secret, path: orders/settings }}, key: colour }}\n",
            bao.addr,
            token_file.display(),
            out.path().display()
        );
        (init(work.path(), &cfg, &[]), out)
    };
    let (o, out) = config(&cp.token(NS, "orders", "vault"));
    assert_exit(&o, 0);
    assert_eq!(out.read("settings"), "blue");
    let (o, _) = config(&cp.token(NS, "orders", "not-vault"));
    assert_exit(&o, 77);
    assert!(text(&o).contains("invalid audience"), "{}", text(&o));
}
