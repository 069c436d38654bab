//! Test bed for integration tests, one file per server: a real OpenBao dev
//! server on a free loopback port ([`openbao`]), PostgreSQL ([`postgres`]),
//! a JWT signer ([`jwt`]), moto ([`moto`]), a counting proxy ([`recorder`]),
//! a Kubernetes control plane ([`kube`]) with `ramsecrets inject` behind it ([`injector`])
//! and a mesh's webhook beside it ([`mesh`]), the local node of `scripts/cluster` ([`node`]),
//! real tmpfs output directories,
//! mounted when root ([`tmpfs`]), and the real `ramsecrets` binary
//! ([`ramsecrets`]); configs built as data ([`config`]), raw HTTP for the
//! servers' limits ([`raw`]), the proxy's clients ([`clients`]) and the
//! drill's command line ([`drill`]), the book's code blocks ([`book`]). This file
//! holds the helpers they share.
//! A server that cannot start fails the test.

#![allow(dead_code)]

pub mod apply;
pub mod auth;
pub mod book;
pub mod clients;
mod config;
pub mod drill;
pub mod helm;
pub mod injector;
mod jwt;
pub mod kube;
pub mod mesh;
pub mod moto;
pub mod node;
mod openbao;
mod postgres;
mod ramsecrets;
pub mod raw;
pub mod recorder;
mod tmpfs;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// One file per server; each test uses only some of them.
#[allow(unused_imports)]
pub use config::{file_source, kv, kv_key, vault, Config};
#[allow(unused_imports)]
pub use jwt::JwtSigner;
#[allow(unused_imports)]
pub use openbao::{bao_bin, Bao};
#[allow(unused_imports)]
pub use postgres::Postgres;
#[allow(unused_imports)]
pub use ramsecrets::{assert_exit, init, ramsecrets, text, Running};
#[allow(unused_imports)]
pub use tmpfs::Tmpfs;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What `script` prints, run by the test bed's Python (.venv); it must exit 0.
pub fn python_report(script: &str) -> String {
    let out = Command::new(repo().join(".venv/bin/python"))
        .arg("-c")
        .arg(script)
        .output()
        .expect("python from .venv: run `bash scripts/testbed`");
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    report
}

/// A scratch directory under target/, removed on drop.
pub fn scratch() -> tempfile::TempDir {
    let base = repo().join("target/test-scratch");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// A random number for unique names.
pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded randomly per instance.
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// True when the tests run as root (and can mount tmpfs).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A file holding `content`, mode 0600, in `dir`.
pub fn file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// A loopback server that accepts connections and never answers (a hung backend).
pub fn hanging_server() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        l.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until && held.len() < 64 {
            match l.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (port, h)
}

/// Polls `check` every 100 ms until it holds or `limit` passes; panics with `what`.
pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < until,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GETs `url` and returns the body (for /metrics), or None when it does not answer.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let r = reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .ok()?;
    Some((r.status().as_u16(), r.text().unwrap_or_default()))
}

/// The value of a metric line starting with `prefix` (name and labels).
pub fn metric(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Seconds since the Unix epoch, for JWT claims.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
