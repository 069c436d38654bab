//! Hardening of the long-running modes against a neighbour on the same host:
//! the health endpoint's limits, an accept loop that runs out of descriptors,
//! signals during start-up, pid files that point at the wrong process, and
//! config files built to exhaust memory. Every case checks that no secret
//! reached the log. Waits poll with generous limits; nothing asserts a duration.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::*;
use rustix::process::Signal;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);
const VALUE: &str = "s3cr3t-value-7f1c";

/// A `file` source config with one secret, writing to `out`.
fn config(work: &Path, out: &Path) -> Config {
    file(
        work,
        "dev.yaml",
        &format!("secret/app/db:\n  password: {VALUE}\n"),
    );
    Config::new()
        .source(file_source("dev.yaml"))
        .output(out)
        .secret(kv_key("db", "app/db", "password"))
}

/// A ready `ramsecrets run` with a health endpoint; returns it and the port.
fn with_health(work: &Path, out: &Path) -> (Running, u16) {
    let port = free_port();
    let cfg = config(work, out)
        .set("health", json!({ "listen": format!("127.0.0.1:{port}") }))
        .write(work, "config.yaml");
    (Running::sidecar(work, &cfg), port)
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn a_huge_head_gets_431_and_the_health_endpoint_serves_on() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, port) = with_health(work.path(), out.path());
    // A head over 16 KiB is refused with 431, and the next request is served.
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = raw::exchange(port, huge.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert!(raw::exchange(port, HEALTHZ).starts_with("HTTP/1.1 200"));
    assert_eq!(run.stop(Signal::TERM), Some(0));
    assert!(!run.logs().contains(VALUE));
}

#[test]
fn a_head_that_never_ends_is_cut_off() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, port) = with_health(work.path(), out.path());
    // The server closes the connection, after a 408 at most.
    let answer = raw::cut_off(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(raw::exchange(port, HEALTHZ).starts_with("HTTP/1.1 200"));
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn idle_connections_over_32_make_room_for_a_probe_on_the_health_endpoint() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, port) = with_health(work.path(), out.path());
    // 32 idle connections fill the endpoint; the next one (a kubelet's probe) is
    // served, not turned away with 429: the oldest idle connection is closed for it.
    let held: Vec<TcpStream> = (0..32)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let answer = raw::exchange(port, HEALTHZ);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let mut oldest = &held[0];
    oldest.set_read_timeout(Some(LIMIT)).unwrap();
    let mut byte = [0u8; 1];
    let read = std::io::Read::read(&mut oldest, &mut byte);
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the oldest idle connection was not closed: {read:?}"
    );
    drop(held);
    assert_eq!(run.stop(Signal::TERM), Some(0));
}

#[test]
fn an_accept_loop_out_of_descriptors_backs_off_and_recovers() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let (mut run, port) = with_health(work.path(), out.path());
    let pid = run.child.id();
    // Leave room for exactly one more descriptor.
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let o = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={}", open + 1)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // The first connection takes the last descriptor and is held open; the
    // others wait in the backlog while accept fails with EMFILE.
    let held = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let waiting: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || raw::exchange(port, HEALTHZ)))
        .collect();
    run.wait_log("backing off until descriptors are free", LIMIT);
    // While starved, the loop retries quietly instead of spinning (a spinning
    // loop logged a warning per failed accept): a warning starts each spell
    // of starvation, and only an accepted connection (4 here) ends one.
    std::thread::sleep(Duration::from_secs(2));
    let failures = run
        .logs()
        .lines()
        .filter(|l| l.contains("accept") && l.contains("WARN"))
        .count();
    assert!((1..=5).contains(&failures), "{}", run.logs());
    drop(held);
    for w in waiting {
        assert!(w.join().unwrap().starts_with("HTTP/1.1 200"));
    }
    run.wait_log("accepting connections again", LIMIT);
    assert_eq!(run.stop(Signal::TERM), Some(0));
    assert!(!run.logs().contains(VALUE));
}

/// The pid of the only child of `parent` (what `unshare --fork` runs), once it exists.
fn child_of(parent: u32) -> i32 {
    let mut pid = 0;
    wait_until(LIMIT, "unshare to start its child", || {
        pid = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        pid != 0
    });
    pid
}

#[test]
fn sigterm_and_sigint_stop_a_start_up_that_waits_on_a_backend_even_as_pid_1() {
    let work = scratch();
    let out = Tmpfs::new("4m");
    let (port, _hang) = hanging_server();
    let token = file(work.path(), "token", VALUE);
    let cfg = Config::new()
        .source(json!({ "vault": {
            "address": format!("http://127.0.0.1:{port}"),
            "request_timeout": "10m",
            "auth": { "token_file": token },
        } }))
        .output(out.path())
        .secret(
            json!({ "name": "db", "kv": { "mount": "secret", "path": "app/db", "kv_version": 2 } }),
        )
        .write(work.path(), "config.yaml");
    for (mode, sig, code) in [("init", Signal::TERM, 143), ("run", Signal::INT, 130)] {
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["--pid", "--fork", "--kill-child"])
            .arg(env!("CARGO_BIN_EXE_ramsecrets"))
            .args([mode, "--config", cfg.to_str().unwrap(), "--timeout", "10m"]);
        let mut run = Running::spawn(work.path(), cmd);
        let pid = rustix::process::Pid::from_raw(child_of(run.child.id())).unwrap();
        // The signal is sent until it is handled: one sent before the handlers
        // exist is ignored by PID 1, as it was for the whole start-up before.
        let mut exited = None;
        wait_until(LIMIT, "ramsecrets to stop", || {
            let _ = rustix::process::kill_process(pid, sig);
            std::thread::sleep(Duration::from_millis(200));
            exited = run.child.try_wait().unwrap();
            exited.is_some()
        });
        let logs = run.logs();
        assert_eq!(exited.unwrap().code(), Some(code), "{mode}:\n{logs}");
        assert!(logs.contains("stopped during start-up"), "{mode}:\n{logs}");
        assert!(!logs.contains(VALUE));
        assert!(out.names().is_empty());
    }
}

#[test]
fn sighup_reloads_the_config_of_run() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let cfg = config(work.path(), out.path()).write(work.path(), "config.yaml");
    let mut run = Running::sidecar(work.path(), &cfg);
    let pid = rustix::process::Pid::from_raw(run.child.id() as i32).unwrap();
    // Nothing changed on disk: only the signal asks for the reload, and the
    // sidecar keeps running (SIGHUP used to kill it).
    rustix::process::kill_process(pid, Signal::HUP).unwrap();
    run.wait_log("config reloaded", LIMIT);
    assert_eq!(out.read("db"), VALUE);
    assert_eq!(run.stop(Signal::TERM), Some(0));
    let logs = run.logs();
    assert!(logs.contains("SIGHUP"), "{logs}");
    assert!(!logs.contains(VALUE));
}

/// `ramsecrets check` on `text`, in at most 512 MiB of address space (an
/// allocation past it aborts the run instead of exhausting the machine).
fn check_bounded(work: &Path, text: &str) -> std::process::Output {
    let cfg = file(work, "big.yaml", text);
    std::process::Command::new("prlimit")
        .arg("--as=536870912")
        .arg(env!("CARGO_BIN_EXE_ramsecrets"))
        .args(["check", "--config-only", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn configs_built_to_exhaust_memory_are_refused_with_78() {
    let work = scratch();
    // Over the size cap.
    let o = check_bounded(work.path(), &format!("#{}\n", "x".repeat(1 << 20)));
    assert_exit(&o, 78);
    assert!(text(&o).contains("larger than 1024 KiB"), "{}", text(&o));
    // An alias bomb: ten aliases of ten aliases… of ten values.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let o = check_bounded(work.path(), &bomb);
    assert_exit(&o, 78);
    assert!(
        text(&o).contains("once its aliases are expanded"),
        "{}",
        text(&o)
    );
    // Long keys nested deep, over a long list: the key paths of every item
    // once took gigabytes. Too deep is refused; 60 levels are indexed in
    // linear space and the config is then judged as usual.
    let key = "k".repeat(1000);
    let nested = |levels: usize, items: usize| {
        let mut t = String::new();
        for l in 0..levels {
            t.push_str(&format!("{}{key}{l}:\n", " ".repeat(l)));
        }
        format!("{t}{}[{}x]\n", " ".repeat(levels), "x,".repeat(items))
    };
    let o = check_bounded(work.path(), &nested(300, 400));
    assert_exit(&o, 78);
    assert!(text(&o).contains("nests deeper than 64"), "{}", text(&o));
    let o = check_bounded(work.path(), &nested(60, 100_000));
    assert_exit(&o, 78);
    assert!(text(&o).contains("unknown key"), "{}", text(&o));
}

#[test]
fn a_pid_file_naming_pid_1_a_process_group_or_ramsecrets_itself_is_refused() {
    let (work, out) = (scratch(), Tmpfs::new("4m"));
    let pid_file = work.path().join("app.pid");
    let cfg = config(work.path(), out.path())
        .secret_with(
            "db",
            json!({ "on_change": [{ "signal": { "pid_file": pid_file, "signal": "HUP" } }] }),
        )
        .write(work.path(), "config.yaml");
    // In a PID namespace of its own (a shell as its PID 1), so that no
    // signal, refused or not, can reach a process outside the test.
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child", "sh", "-c"])
        .arg("\"$0\" run --config \"$1\" & echo $! > \"$2\"; wait $!")
        .arg(env!("CARGO_BIN_EXE_ramsecrets"))
        .arg(&cfg)
        .arg(&pid_file);
    let mut run = Running::spawn(work.path(), cmd);
    run.wait_log("ready; keeping secrets fresh", LIMIT);
    let own = std::fs::read_to_string(&pid_file).unwrap();
    for (i, (pid, says)) in [
        (own.trim(), "own pid"),
        ("1", "holds pid 1"),
        ("0", "not a process id above 1"),
        ("-1", "not a process id above 1"),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&pid_file, pid).unwrap();
        // A new value: the change runs the action.
        file(
            work.path(),
            "dev.yaml",
            &format!("secret/app/db:\n  password: {VALUE}-{i}\n"),
        );
        wait_until(LIMIT, "the action to be refused", || {
            run.logs().matches("refusing to signal").count() > i
        });
        let logs = run.logs();
        let last = logs.lines().rfind(|l| l.contains("refusing")).unwrap();
        assert!(last.contains(says), "{pid}: {last}");
    }
    assert!(run.child.try_wait().unwrap().is_none(), "{}", run.logs());
    assert!(!run.logs().contains(VALUE));
}
