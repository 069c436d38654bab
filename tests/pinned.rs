//! `--config-sha256`, as injected containers run with it: a config whose bytes are not the
//! pinned ones is refused at start (exit 78, nothing written) and at a reload (the running
//! config stays), so a config swapped after admission is never run.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rustix::process::Signal;
use sha2::{Digest, Sha256};

const LIMIT: Duration = Duration::from_secs(30);

fn sha256(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A config of secret `db` from the file source `name` (beside the config), written to `out`.
fn config(out: &Path, name: &str) -> Config {
    Config::new()
        .source(file_source(name))
        .output(out)
        .secret(kv_key("db", "app/db", "password"))
}

#[test]
fn a_config_other_than_the_pinned_one_is_refused_at_start_and_at_a_reload() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    file(work.path(), "dev.yaml", "secret/app/db:\n  password: one\n");
    file(
        work.path(),
        "evil.yaml",
        "secret/app/db:\n  password: evil\n",
    );
    let admitted = config(out.path(), "dev.yaml");
    let cfg = admitted.write(work.path(), "config.yaml");
    let pin = sha256(&cfg);
    let cfg = cfg.to_str().unwrap();

    let other = Sha256::digest(b"another config")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let o = ramsecrets(&["init", "--config", cfg, "--config-sha256", &other]);
    assert_exit(&o, 78);
    assert!(text(&o).contains("--config-sha256"), "{}", text(&o));
    assert!(out.names().is_empty(), "nothing written: {:?}", out.names());
    let o = ramsecrets(&["init", "--config", cfg, "--config-sha256", "not-hex"]);
    assert_exit(&o, 64);

    let mut run = Running::start(
        work.path(),
        &["run", "--config", cfg, "--config-sha256", &pin],
    );
    run.wait_log("ready; keeping secrets fresh", LIMIT);
    assert_eq!(out.read("db"), "one");
    // The config swapped under the running sidecar: refused, never run.
    config(out.path(), "evil.yaml").write(work.path(), "config.yaml");
    run.wait_log("config change refused", LIMIT);
    assert!(run.logs().contains(&pin), "{}", run.logs());
    // The admitted config still runs: its source's changes arrive, the swapped one's do not.
    file(work.path(), "dev.yaml", "secret/app/db:\n  password: two\n");
    wait_until(LIMIT, "the admitted source's change", || {
        out.read("db") == "two"
    });
    assert_eq!(run.stop(Signal::TERM), Some(0));
}
