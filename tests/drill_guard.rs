//! What the drill must not touch or leave behind, against real OpenBao and
//! moto: a lease that a (forged) metrics page names but that is not the
//! secret's own, or that Vault does not know; an AWSPENDING version of a
//! rotation that failed or was interrupted half way; an AWSCURRENT that a
//! rotation after the drill's moved on.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::drill::*;
use common::moto::{AwsEnv, Moto};
use common::recorder::Recorder;
use common::*;
use rustix::process::Signal;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(60);

/// The lease ids under `prefix` Vault holds now.
fn lease_keys(bao: &Bao, prefix: &str) -> Vec<String> {
    let v = bao.api("LIST", &format!("sys/leases/lookup/{prefix}"), Value::Null);
    v["data"]["keys"]
        .as_array()
        .map(|k| k.iter().map(|k| k.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn a_metrics_page_naming_another_lease_makes_the_drill_revoke_nothing() {
    let bao = Bao::start();
    let work = scratch();
    let out = Tmpfs::new("4m");
    // An unrelated token, with its lease: what a forged page would point at.
    let before = lease_keys(&bao, "auth/token/create/");
    let token = bao.api(
        "POST",
        "auth/token/create",
        json!({ "policies": ["default"], "ttl": "1h" }),
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = lease_keys(&bao, "auth/token/create/")
        .into_iter()
        .find(|k| !before.contains(k))
        .expect("the token's lease");
    let token_lease = format!("auth/token/create/{key}");
    let secrets = [json!({ "name": "db", "read": "database/creds/dyn", "file": "db.json" })];
    let cfg = sidecar_config(token_source(&bao, work.path()), &out, free_port(), &secrets)
        .write(work.path(), "config.yaml");
    // A drill told by a forged metrics page that the sidecar holds `lease`.
    let drill_with = |lease: &str| {
        let metrics = fake_metrics(&format!(
            "ramsecrets_secret_version{{secret=\"db\",version=\"\",lease=\"{lease}\"}} 1\n"
        ));
        let o = drill_cmd(&cfg, "db", &["--metrics", &metrics, "--deadline", "1s"])
            .output()
            .unwrap();
        assert_exit(&o, 65);
        text(&o)
    };

    let err = drill_with(&token_lease);
    assert!(
        err.contains(&token_lease) && err.contains("not a lease of `database/creds/dyn`"),
        "{err}"
    );
    assert!(err.contains("nothing was revoked"), "{err}");
    let (status, _) = bao.api_as(&token, "GET", "auth/token/lookup-self", Value::Null);
    assert_eq!(status, 200, "the unrelated token was revoked");

    // Under the secret's path, but not a lease Vault knows: refused too,
    // instead of a revoke that succeeds on nothing and passes for a rotation.
    let err = drill_with("database/creds/dyn/forged1234");
    assert!(
        err.contains("no lease `database/creds/dyn/forged1234`"),
        "{err}"
    );
}

/// Secret `db` in moto (reached through the recording proxy, which can
/// inject faults), the drill's config, and its environment.
struct AwsBed {
    moto: Moto,
    proxy: Recorder,
    work: tempfile::TempDir,
    _out: Tmpfs,
    cfg: PathBuf,
    env: AwsEnv,
    old: String,
}

impl AwsBed {
    fn start() -> AwsBed {
        let moto = Moto::start();
        let proxy = Recorder::start(moto.port);
        let work = scratch();
        let out = Tmpfs::new("4m");
        let old = moto.create(
            "app/db",
            r#"{"username":"app","password":"aws-old-password"}"#,
        );
        let source = json!({ "aws_secrets_manager": { "endpoint": proxy.url() } });
        let secrets = [json!({ "name": "db", "secret_id": "app/db", "file": "db.json" })];
        let cfg =
            sidecar_config(source, &out, free_port(), &secrets).write(work.path(), "config.yaml");
        AwsBed {
            moto,
            proxy,
            work,
            _out: out,
            cfg,
            env: AwsEnv::keys(),
            old,
        }
    }

    fn drill(&self, extra: &[&str]) -> std::process::Command {
        let mut args = vec![
            "drill",
            "--config",
            self.cfg.to_str().unwrap(),
            "--secret",
            "db",
            "--json",
        ];
        args.extend_from_slice(extra);
        let mut cmd = self.env.command(&args);
        cmd.stdin(std::process::Stdio::null());
        cmd
    }

    /// Each version and its stages, as moto holds them.
    fn stages(&self) -> Value {
        self.moto
            .sm("DescribeSecret", json!({ "SecretId": "app/db" }))["VersionIdsToStages"]
            .clone()
    }

    /// The versions that hold `stage`.
    fn holding(&self, stage: &str) -> Vec<String> {
        let stages = self.stages();
        stages
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, s)| s.as_array().unwrap().contains(&json!(stage)))
            .map(|(v, _)| v.clone())
            .collect()
    }
}

#[test]
fn a_failed_aws_rotation_takes_its_awspending_back_and_says_so() {
    let bed = AwsBed::start();
    bed.proxy.fail_when(
        "UpdateSecretVersionStage",
        "AWSCURRENT",
        400,
        "AccessDeniedException",
        1,
    );
    let o = bed.drill(&["--check", "true"]).output().unwrap();
    assert_exit(&o, 77);
    let err = text(&o);
    assert!(err.contains("AWSPENDING removed from version"), "{err}");
    assert!(bed.holding("AWSPENDING").is_empty(), "{:#}", bed.stages());
    assert_eq!(bed.holding("AWSCURRENT"), vec![bed.old.clone()]);
    assert!(!err.contains("aws-old-password"), "{err}");
}

#[test]
fn ctrl_c_during_an_aws_rotation_takes_its_awspending_back() {
    let bed = AwsBed::start();
    // Moving AWSCURRENT is throttled for as long as the drill would retry.
    bed.proxy.fail_when(
        "UpdateSecretVersionStage",
        "AWSCURRENT",
        400,
        "ThrottlingException",
        10_000,
    );
    let mut running = Running::spawn(bed.work.path(), bed.drill(&[]));
    wait_until(LIMIT, "a refused move of AWSCURRENT", || {
        bed.proxy
            .records()
            .iter()
            .any(|c| c.op == "UpdateSecretVersionStage" && c.status == 400)
    });
    assert_eq!(running.stop(Signal::INT), Some(130));
    let logs = running.logs();
    assert!(logs.contains("interrupted during the rotation"), "{logs}");
    assert!(logs.contains("AWSPENDING removed from version"), "{logs}");
    assert!(bed.holding("AWSPENDING").is_empty(), "{:#}", bed.stages());
    assert_eq!(bed.holding("AWSCURRENT"), vec![bed.old.clone()]);
}

#[test]
fn awscurrent_moved_on_by_a_later_rotation_is_not_moved_back() {
    let bed = AwsBed::start();
    // No app check and files that never change: the drill waits in its window.
    let mut running = Running::spawn(bed.work.path(), bed.drill(&["--deadline", "5m"]));
    running.wait_log("backend written", LIMIT);
    let drills = bed.holding("AWSCURRENT");
    assert_ne!(drills, vec![bed.old.clone()]);
    // A rotation function makes a newer version current meanwhile.
    let later = bed.moto.put(
        "app/db",
        r#"{"username":"app","password":"aws-later-password"}"#,
        &[],
    );
    assert_eq!(running.stop(Signal::INT), Some(130));
    let logs = running.logs();
    assert!(
        logs.contains(&format!(
            "AWSCURRENT is on version {later}, not on the drill's version {}",
            drills[0]
        )),
        "{logs}"
    );
    assert!(logs.contains("left as it is"), "{logs}");
    assert_eq!(bed.holding("AWSCURRENT"), vec![later]);
}
