//! The real `ramsecrets` binary: one-shot runs ([`ramsecrets`], [`init`])
//! and long-running ones ([`Running`]) whose logs a test waits on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::rand_u64;

/// Runs the ramsecrets binary with `args`.
pub fn ramsecrets(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ramsecrets"))
        .args(args)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Writes `config` to a file in `dir` and runs `ramsecrets init` on it.
pub fn init(dir: &Path, config: &str, extra: &[&str]) -> Output {
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let mut args = vec!["init", "--config", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    ramsecrets(&args)
}

/// stdout and stderr together, for messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts the exit code, showing the output when it differs.
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "output:\n{}", text(o));
}

/// A `ramsecrets run` or `exec` in the background, its logs in a file; killed on drop.
pub struct Running {
    pub child: Child,
    log: PathBuf,
}

impl Running {
    /// Starts `ramsecrets <args>` with its stderr captured.
    pub fn start(dir: &Path, args: &[&str]) -> Running {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ramsecrets"));
        cmd.args(args)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN");
        Running::spawn(dir, cmd)
    }

    /// `ramsecrets run --config <cfg>`, once it has written every file and is ready.
    pub fn sidecar(dir: &Path, cfg: &Path) -> Running {
        let mut run = Running::start(dir, &["run", "--config", cfg.to_str().unwrap()]);
        run.wait_log("ready; keeping secrets fresh", Duration::from_secs(60));
        run
    }

    /// `ramsecrets exec --config <cfg> -- sh -c <script>`.
    pub fn exec(dir: &Path, cfg: &Path, script: &str) -> Running {
        let args = [
            "exec",
            "--config",
            cfg.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            script,
        ];
        Running::start(dir, &args)
    }

    /// Starts `cmd` (a ramsecrets command line) with its output captured in `dir`.
    pub fn spawn(dir: &Path, mut cmd: Command) -> Running {
        let log = dir.join(format!("ramsecrets-{:x}.log", rand_u64()));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Running { child, log }
    }

    /// Everything logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the logs contain `text`.
    pub fn wait_log(&mut self, text: &str, limit: Duration) {
        let until = Instant::now() + limit;
        while !self.logs().contains(text) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "ramsecrets exited ({status}) before logging `{text}`:\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < until,
                "`{text}` not logged within {limit:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `sig` and waits for the exit code.
    pub fn stop(&mut self, sig: rustix::process::Signal) -> Option<i32> {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < until,
                "ramsecrets did not stop:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
