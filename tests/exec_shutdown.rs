//! `ramsecrets exec` at shutdown: a child that ignores TERM is killed after
//! `exec.grace`, and Ctrl-C on a real terminal (a pty) reaches the child once.
//! Waits poll for events with generous limits; nothing asserts a duration.

mod common;

use std::path::Path;
use std::time::Duration;

use common::clients::python;
use common::*;
use rustix::process::Signal;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

/// An `exec` config over a `file` source, the child given `grace` to stop.
fn config(work: &Path, out: &Tmpfs) -> std::path::PathBuf {
    file(work, "dev.yaml", "secret/app/db:\n  password: one\n");
    Config::new()
        .source(file_source("dev.yaml"))
        .output(out.path())
        .set("exec", json!({ "grace": "1s" }))
        .secret(kv_key("db", "app/db", "password"))
        .write(work, "config.yaml")
}

/// A child that records each INT and ignores TERM and INT, after writing `started`.
fn stubborn(work: &Path) -> String {
    let d = work.display();
    format!(
        "trap 'echo int >> {d}/ints' INT; trap '' TERM; echo $$ > {d}/started; while :; do sleep 0.1; done"
    )
}

#[test]
fn a_child_that_ignores_term_is_killed_after_the_grace_period() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    let cfg = config(work.path(), &out);
    let mut run = Running::exec(work.path(), &cfg, &stubborn(work.path()));
    let started = work.path().join("started");
    wait_until(LIMIT, "the child", || started.exists());
    assert_eq!(run.stop(Signal::TERM), Some(128 + 9), "{}", run.logs());
    assert!(run
        .logs()
        .contains("child did not stop in time; killing it"));
}

#[test]
fn ctrl_c_on_a_terminal_reaches_the_child_once() {
    let work = scratch();
    let out = Tmpfs::new("1m");
    let cfg = config(work.path(), &out);
    let d = work.path().display();
    // ramsecrets on a pty as in a terminal; one Ctrl-C once the child runs.
    let code = python(&format!(
        r#"
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv({bin:?}, [{bin:?}, "exec", "--config", {cfg:?}, "--", "sh", "-c", {script:?}])
until = time.time() + 60
while not os.path.exists("{d}/started") and time.time() < until:
    time.sleep(0.05)
os.write(fd, b"\x03")
out = b""
while time.time() < until:
    ready, _, _ = select.select([fd], [], [], 1)
    if ready:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
done, status = os.waitpid(pid, os.WNOHANG)
while done == 0 and time.time() < until:
    time.sleep(0.05)
    done, status = os.waitpid(pid, os.WNOHANG)
if done == 0:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print("hung", out.decode(errors="replace"))
else:
    print(os.waitstatus_to_exitcode(status), out.decode(errors="replace"))
"#,
        bin = env!("CARGO_BIN_EXE_ramsecrets"),
        cfg = cfg.to_str().unwrap(),
        script = stubborn(work.path()),
    ));
    let ints = std::fs::read_to_string(work.path().join("ints")).unwrap_or_default();
    assert_eq!(ints.lines().count(), 1, "{code}");
    // The child ignored the INT; it was killed after the grace period.
    assert!(code.starts_with("137 "), "{code}");
}
