//! Small fleets of real `ramsecrets run` processes, each with its own
//! credentials and tmpfs, through a recording proxy that sees every request
//! on the wire: against OpenBao's rate-limit quota (429s honoured, not
//! amplified), and against AWS Secrets Manager (moto), where a cycle costs one
//! batch call per sidecar; and one sidecar on a node whose pods have used up
//! the kernel's inotify instances. (The benchmarks with hundreds of sidecars, an
//! outage and a report are bench/fleet.sh and bench/aws_calls.sh.)

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::moto::{AwsEnv, Moto};
use common::recorder::Recorder;
use common::{file, file_source, scratch, wait_until, Bao, Config, Running, Tmpfs};
use serde_json::{json, Value};

const SIDECARS: usize = 20;
const SECRETS: usize = 3;
/// What the quota admits per second: a sixth of the fleet's natural rate
/// (20 sidecars × 3 secrets every second).
const RATE: usize = 10;

/// Writes a new version of every secret holding `round`, directly to
/// OpenBao (the quota applies to these writes too: a 429 is waited out).
fn write_round(bao: &Bao, round: u32) {
    for k in 0..SECRETS {
        let path = format!("secret/data/fleet/s{k}");
        let body = json!({ "data": { "round": round.to_string() } });
        wait_until(Duration::from_secs(60), "a write past the quota", || {
            let (status, v) = bao.api_as(&bao.token, "POST", &path, body.clone());
            assert!(status == 200 || status == 429, "{path}: {status} {v}");
            status == 200
        });
    }
}

/// Whether every file of the sidecar writing into `dir` holds `round`.
fn current(dir: &Path, round: u32) -> bool {
    (0..SECRETS).all(|k| {
        std::fs::read_to_string(dir.join(format!("s{k}")))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["round"].as_str() == Some(round.to_string().as_str()))
    })
}

#[test]
fn a_fleet_under_a_quota_honours_429s_without_amplifying_them_and_ends_current() {
    let bao = Bao::start();
    write_round(&bao, 0);
    let port: u16 = bao.addr.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Recorder::start(port);
    let policy = r#"path "secret/data/fleet/*" { capabilities = ["read"] }"#;
    let work = scratch();
    let mut outs = Vec::new();
    let mut fleet = Vec::new();
    for i in 0..SIDECARS {
        let out = Tmpfs::new("1m");
        let token = bao.token_with_policy("fleet", policy);
        let token = file(work.path(), &format!("token-{i}"), &token);
        let config = (0..SECRETS).fold(
            Config::new()
                .source(json!({ "name": "vault", "vault": { "address": proxy.url(), "auth": { "token_file": token } } }))
                .output(out.path())
                .set("refresh", json!({ "interval": "1s" })),
            |config, k| {
                config.secret(json!({
                    "name": format!("s{k}"),
                    "kv": { "mount": "secret", "path": format!("fleet/s{k}") },
                    "format": "json",
                }))
            },
        );
        let cfg = config.write(work.path(), &format!("config-{i}.yaml"));
        fleet.push(Running::start(
            work.path(),
            &["run", "--config", cfg.to_str().unwrap()],
        ));
        outs.push(out);
    }
    for run in &mut fleet {
        run.wait_log("ready; keeping secrets fresh", Duration::from_secs(120));
    }

    // The quota, with the headers that carry Retry-After; then new versions.
    bao.api(
        "POST",
        "sys/quotas/config",
        json!({ "enable_rate_limit_response_headers": true }),
    );
    bao.api(
        "POST",
        "sys/quotas/rate-limit/fleet",
        json!({ "path": "secret/", "rate": RATE, "interval": "1s" }),
    );
    let start = Instant::now();
    write_round(&bao, 1);
    // Every file ends current, under the quota.
    let limit = Instant::now() + Duration::from_secs(300);
    while !outs.iter().all(|o| current(o.path(), 1)) {
        if Instant::now() > limit {
            let records = proxy.records();
            let count = |s: u16| records.iter().filter(|c| c.status == s).count();
            let behind = outs.iter().filter(|o| !current(o.path(), 1)).count();
            panic!(
                "{behind} sidecars not at round 1 after 300 s; requests: {} (200: {}, 429: {}, none: {}); a log:\n{}",
                records.len(),
                count(200),
                count(429),
                count(0),
                fleet[0].logs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Give the fleet at least 30 s under the quota (its first second, before
    // any sidecar has been told, costs about 50 429s), then count.
    while start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let window = start.elapsed();
    let reads: Vec<_> = proxy
        .records()
        .into_iter()
        .filter(|c| c.at >= start && c.path.starts_with("/v1/secret/"))
        .collect();
    let sent = reads.len();
    let throttled = reads.iter().filter(|c| c.status == 429).count();
    // A span of `window` touches at most ⌈window⌉ + 1 one-second windows.
    let admits = RATE * (window.as_secs() as usize + 2);
    println!(
        "under a quota of {RATE}/s for {:.1}s: {sent} reads sent, {throttled} answered 429, the quota admits {admits}",
        window.as_secs_f64()
    );
    // Reads and 429s per second of the window, for the message.
    let mut per_second = vec![(0, 0); window.as_secs() as usize + 1];
    for c in &reads {
        let second = &mut per_second[(c.at - start).as_secs() as usize];
        second.0 += 1;
        second.1 += usize::from(c.status == 429);
    }
    assert!(throttled > 0, "the quota was never hit: nothing was proven");
    assert!(
        sent as f64 <= 1.2 * admits as f64,
        "429s amplified: {sent} reads sent where the quota admits {admits}; (reads, 429s) per second: {per_second:?}"
    );
    // No sidecar gave up.
    for (i, run) in fleet.iter_mut().enumerate() {
        assert!(
            run.child.try_wait().unwrap().is_none(),
            "sidecar {i} gave up:\n{}",
            run.logs()
        );
    }
}

#[test]
fn in_run_mode_the_secrets_of_a_sidecar_share_one_batch_call_per_refresh() {
    const AWS_SIDECARS: usize = 3;
    const AWS_SECRETS: usize = 10;
    let moto = Moto::start();
    for k in 0..AWS_SECRETS {
        moto.create(&format!("fleet/s{k}"), &format!("v{k}"));
    }
    let proxy = Recorder::start(moto.port);
    let env = AwsEnv::keys();
    let work = scratch();
    let secrets: Vec<Value> = (0..AWS_SECRETS)
        .map(|k| json!({ "name": format!("s{k}"), "secret_id": format!("fleet/s{k}") }))
        .collect();
    let mut outs = Vec::new();
    let mut fleet = Vec::new();
    for i in 0..AWS_SIDECARS {
        let out = Tmpfs::new("1m");
        let config = secrets.iter().fold(
            Config::new()
                .source(json!({ "aws_secrets_manager": { "region": "us-east-1", "endpoint": proxy.url() } }))
                .output(out.path())
                .set("refresh", json!({ "interval": "2s" })),
            |config, secret| config.secret(secret.clone()),
        );
        let cfg = config.write(work.path(), &format!("aws-{i}.yaml"));
        fleet.push(Running::spawn(
            work.path(),
            env.command(&["run", "--config", cfg.to_str().unwrap()]),
        ));
        outs.push(out);
    }
    for run in &mut fleet {
        run.wait_log("ready; keeping secrets fresh", Duration::from_secs(120));
    }
    let start = Instant::now();
    let batches = || -> Vec<_> {
        proxy
            .records()
            .into_iter()
            .filter(|c| c.at >= start && c.op == "BatchGetSecretValue")
            .collect()
    };
    // Five refresh cycles of every sidecar.
    wait_until(Duration::from_secs(120), "five refresh cycles", || {
        batches().len() >= 5 * AWS_SIDECARS
    });
    // Every call carried every secret of its sidecar: the jittered schedules
    // of one sidecar never split a cycle into several calls.
    for call in batches() {
        let body: Value = serde_json::from_slice(&call.body).unwrap();
        let ids = body["SecretIdList"].as_array().map_or(0, Vec::len);
        assert_eq!(ids, AWS_SECRETS, "a cycle split into several calls: {body}");
    }
    let others: Vec<String> = proxy
        .records()
        .into_iter()
        .filter(|c| c.at >= start && c.op != "BatchGetSecretValue")
        .map(|c| c.op)
        .collect();
    assert!(others.is_empty(), "calls other than the batch: {others:?}");
    assert_eq!(outs[0].read("s3"), "v3");
}

#[test]
fn a_sidecar_on_a_node_out_of_inotify_instances_still_keeps_its_files_fresh() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    let secrets = file(work.path(), "secrets.yaml", "app/db:\n  password: one\n");
    let cfg = Config::new()
        .source(file_source(&secrets))
        .output(out.path())
        .set("refresh", json!({ "interval": "1s" }))
        .secret(json!({ "name": "db", "kv": { "mount": "app", "path": "db" }, "key": "password" }))
        .write(work.path(), "config.yaml");
    // A user namespace with no inotify instance left to give, as on a node
    // whose pods (running as one uid) have taken them all.
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "sh", "-c"])
        .arg("echo 0 > /proc/sys/user/max_inotify_instances && exec \"$0\" run --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_ramsecrets"))
        .arg(&cfg);
    let mut run = Running::spawn(work.path(), cmd);
    run.wait_log("ready; keeping secrets fresh", Duration::from_secs(60));
    assert!(run.logs().contains("inotify limit"), "{}", run.logs());
    assert_eq!(out.read("db"), "one");
    // Not watched, but polled.
    std::fs::write(&secrets, "app/db:\n  password: two\n").unwrap();
    wait_until(
        Duration::from_secs(60),
        "the edit polled into the file",
        || out.read("db") == "two",
    );
}
