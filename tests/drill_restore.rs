//! Putting the old value back on a KV secret against real OpenBao and a
//! real sidecar: by default for values the drill invented, kept with
//! `--keep`, and on SIGINT; the JSON report shows no value. A drill that
//! checks nothing in the app is NOT VERIFIED, never passed.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::drill::*;
use common::*;
use rustix::process::Signal;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(60);

/// The KV secret `svc` of the restore drills: OpenBao, a sidecar following
/// it, and the secret's first value.
struct SvcBed {
    bao: Bao,
    work: tempfile::TempDir,
    _out: Tmpfs,
    cfg: PathBuf,
    run: Running,
    original: Value,
    v1: u64,
}

impl SvcBed {
    fn start() -> SvcBed {
        let bao = Bao::start();
        let work = scratch();
        let out = Tmpfs::new("4m");
        let original = json!({ "username": "svc", "password": "orig-Password-123", "api_token": "tok-abc-123456" });
        let v1 = bao.kv2_put("app/svc", original.clone());
        let secrets = [
            json!({ "name": "svc", "kv": { "mount": "secret", "path": "app/svc" }, "format": "json" }),
        ];
        let (cfg, run) = vault_sidecar(&bao, work.path(), &out, free_port(), &secrets);
        SvcBed {
            bao,
            work,
            _out: out,
            cfg,
            run,
            original,
            v1,
        }
    }

    /// A drill whose app check passes while the returned marker file exists,
    /// with its deadline far away; returned once it wrote the backend.
    fn drill_in_the_window(&self) -> (Running, PathBuf) {
        let marker = file(self.work.path(), "healthy", "");
        let check = format!("test -f {}", marker.display());
        let cmd = drill_cmd(&self.cfg, "svc", &["--check", &check, "--deadline", "5m"]);
        let mut running = Running::spawn(self.work.path(), cmd);
        running.wait_log("backend written", LIMIT);
        (running, marker)
    }

    /// The secret's current version (`data` and `metadata`).
    fn current(&self) -> Value {
        self.bao.api("GET", "secret/data/app/svc", Value::Null)["data"].clone()
    }
}

#[test]
fn invented_kv_values_are_put_back_by_default_and_an_unchecked_drill_is_not_verified() {
    let mut bed = SvcBed::start();
    let v1 = bed.v1;
    let (o, report) = drill(drill_cmd(&bed.cfg, "svc", &[]));
    assert_exit(&o, 2);
    assert_eq!(report["passed"], false, "{report:#}");
    assert_eq!(report["verified"], false, "{report:#}");
    assert_eq!(report["recovered"], true, "{report:#}");
    assert_eq!(
        report["rotation"]["fields"],
        json!(["api_token", "password"])
    );
    assert_eq!(report["rotation"]["from"], v1.to_string());
    assert_eq!(report["rotation"]["to"], (v1 + 1).to_string());
    assert!(
        report["restored"]
            .as_str()
            .unwrap()
            .contains(&(v1 + 2).to_string()),
        "{report:#}"
    );
    assert_eq!(bed.current()["data"], bed.original);
    let rotated = bed.bao.api(
        "GET",
        &format!("secret/data/app/svc?version={}", v1 + 1),
        Value::Null,
    );
    let rotated = &rotated["data"]["data"];
    assert_eq!(rotated["username"], "svc");
    let (new_pw, new_tok) = (
        rotated["password"].as_str().unwrap(),
        rotated["api_token"].as_str().unwrap(),
    );
    assert_eq!(new_pw.len(), 17);
    let dashes = |s: &str| s.match_indices('-').map(|(i, _)| i).collect::<Vec<_>>();
    assert_eq!(dashes(new_tok), dashes("tok-abc-123456"), "{new_tok}");
    assert_eq!(new_tok.len(), 14);
    assert_no_secret(
        &o,
        &["orig-Password-123", "tok-abc-123456", new_pw, new_tok],
    );
    assert_eq!(bed.run.stop(Signal::TERM), Some(0));
}

#[test]
fn keep_leaves_the_invented_values_and_the_text_report_says_not_verified() {
    let mut bed = SvcBed::start();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ramsecrets"))
        .args(["drill", "--secret", "svc", "--keep", "--config"])
        .arg(&bed.cfg)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_exit(&o, 2);
    let out = text(&o);
    assert!(out.contains("result: NOT VERIFIED"), "{out}");
    assert!(
        !out.contains("PASSED") && !out.contains("restored:"),
        "{out}"
    );
    let now = bed.current();
    assert_eq!(now["metadata"]["version"], bed.v1 + 1);
    assert_ne!(now["data"], bed.original);
    assert_eq!(now["data"]["username"], "svc");
    assert_eq!(bed.run.stop(Signal::TERM), Some(0));
}

#[test]
fn sigint_during_a_drill_puts_the_old_kv_value_back() {
    let mut bed = SvcBed::start();
    let before = bed.v1;
    // The app (here a marker file) never recovers; SIGINT puts the old value back.
    let (mut running, marker) = bed.drill_in_the_window();
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(running.stop(Signal::INT), Some(130));
    assert!(running.logs().contains("interrupted"), "{}", running.logs());
    // Versions are logged as they are, not as Rust's `Some("4")`.
    let written = format!("from={before} to={}", before + 1);
    assert!(running.logs().contains(&written), "{}", running.logs());
    assert_eq!(bed.current()["data"], bed.original);
    assert_eq!(
        bed.current()["metadata"]["version"].as_u64().unwrap(),
        before + 2
    );
    assert!(!running.logs().contains("orig-Password-123"));
    assert_eq!(bed.run.stop(Signal::TERM), Some(0));
}

#[test]
fn a_version_written_during_the_drill_is_not_overwritten_by_the_restore() {
    let mut bed = SvcBed::start();
    let (mut running, marker) = bed.drill_in_the_window();
    let drills = bed.current()["metadata"]["version"].as_u64().unwrap();
    assert_eq!(drills, bed.v1 + 1);
    // The app stays unhealthy, so the drill waits; a real rotation lands meanwhile.
    std::fs::remove_file(&marker).unwrap();
    let real = json!({ "username": "svc", "password": "real-Rotation-456", "api_token": "tok-real-999999" });
    let real_version = bed.bao.kv2_put("app/svc", real.clone());
    assert_eq!(running.stop(Signal::INT), Some(130));
    let logs = running.logs();
    assert!(
        logs.contains(&format!(
            "version {real_version} was written after the drill's version {drills}: left as it is"
        )),
        "{logs}"
    );
    assert_eq!(bed.current()["data"], real);
    assert_eq!(
        bed.current()["metadata"]["version"].as_u64().unwrap(),
        real_version
    );
    assert!(!logs.contains("orig-Password-123") && !logs.contains("real-Rotation-456"));
    assert_eq!(bed.run.stop(Signal::TERM), Some(0));
}
