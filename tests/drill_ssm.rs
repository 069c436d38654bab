//! The drill of a Parameter Store parameter against moto and a real sidecar:
//! a new version (PutParameter with Overwrite, the type kept) that the
//! sidecar follows, the old value put back as a newer version (by default for
//! an invented value; a `--set` value stays), never over a version written
//! after the drill's; a pinned parameter is refused. The proxy's answer
//! carries the service's own ARN and LastModifiedDate.

mod common;

use std::time::Duration;

use common::drill::*;
use common::moto::{AwsEnv, Moto};
use common::*;
use rustix::process::Signal;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(60);
const NAME: &str = "/app/api-key";
const OLD: &str = "key-Old-123456";

/// moto with the SecureString parameter [`NAME`] at [`OLD`], and the config of
/// a sidecar reading it (and a pinned copy).
struct Bed {
    moto: Moto,
    work: tempfile::TempDir,
    out: Tmpfs,
}

impl Bed {
    fn start() -> Bed {
        let bed = Bed {
            moto: Moto::start(),
            work: scratch(),
            out: Tmpfs::new("1m"),
        };
        assert_eq!(bed.moto.put_parameter(NAME, OLD, "SecureString"), 1);
        let endpoint = bed.moto.url.clone();
        let source =
            json!({ "ssm_parameter_store": { "region": "us-east-1", "endpoint": endpoint } });
        let secrets = [
            json!({ "name": "api-key", "parameter": NAME }),
            json!({ "name": "pinned", "parameter": NAME, "version": 1 }),
        ];
        sidecar_config(source, &bed.out, free_port(), &secrets)
            .write(bed.work.path(), "config.yaml");
        bed
    }

    /// The config, as `start` wrote it.
    fn cfg(&self) -> String {
        let cfg = self.work.path().join("config.yaml");
        cfg.to_str().unwrap().to_owned()
    }

    fn drill(&self, secret: &str, extra: &[&str]) -> std::process::Command {
        let cfg = self.cfg();
        let mut args = vec!["drill", "--config", &cfg, "--secret", secret, "--json"];
        args.extend_from_slice(extra);
        let mut cmd = AwsEnv::keys().command(&args);
        cmd.stdin(std::process::Stdio::null());
        cmd
    }

    fn sidecar(&self) -> Running {
        let cmd = AwsEnv::keys().command(&["run", "--config", &self.cfg()]);
        let mut run = Running::spawn(self.work.path(), cmd);
        run.wait_log("ready; keeping secrets fresh", LIMIT);
        run
    }

    /// The parameter as moto holds it now (decrypted).
    fn current(&self) -> Value {
        self.moto.ssm(
            "GetParameter",
            json!({ "Name": NAME, "WithDecryption": true }),
        )["Parameter"]
            .clone()
    }
}

#[test]
fn a_new_version_is_followed_and_the_invented_value_put_back_as_a_newer_one() {
    let bed = Bed::start();
    let _run = bed.sidecar();
    assert_eq!(bed.out.read("api-key"), OLD);
    let (o, report) = drill(bed.drill("api-key", &["--check", "true"]));
    assert_exit(&o, 0);
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["rotation"]["fields"], json!(["value"]), "{report:#}");
    assert_eq!(report["rotation"]["from"], "1", "{report:#}");
    assert_eq!(report["rotation"]["to"], "2", "{report:#}");
    let restored = report["restored"].as_str().unwrap_or_default();
    assert!(
        restored.contains(&format!("parameter `{NAME}` put back as version 3")),
        "{report:#}"
    );
    let now = bed.current();
    assert_eq!(
        (now["Value"].as_str(), now["Version"].as_u64()),
        (Some(OLD), Some(3))
    );
    assert_eq!(now["Type"], "SecureString");
    // The drill's value had the old one's shape, and shows nowhere.
    let history = bed.moto.ssm(
        "GetParameterHistory",
        json!({ "Name": NAME, "WithDecryption": true }),
    )["Parameters"]
        .clone();
    let drills = history[1]["Value"].as_str().unwrap().to_owned();
    assert_eq!(drills.len(), OLD.len());
    assert_ne!(drills, OLD);
    assert_no_secret(&o, &[OLD, &drills]);
    wait_until(LIMIT, "the old value back in the file", || {
        bed.out.read("api-key") == OLD
    });
}

#[test]
fn a_set_value_stays_and_a_pinned_parameter_is_refused() {
    let bed = Bed::start();
    let given = "given-Key-654321";
    let _run = bed.sidecar();
    let (o, report) = drill(bed.drill(
        "api-key",
        &["--check", "true", "--set", &format!("value={given}")],
    ));
    assert_exit(&o, 0);
    assert!(report["restored"].is_null(), "{report:#}");
    let now = bed.current();
    assert_eq!(
        (now["Value"].as_str(), now["Version"].as_u64()),
        (Some(given), Some(2))
    );
    assert_eq!(bed.out.read("api-key"), given);
    // A pinned parameter would never see the new version.
    let refused = bed.drill("pinned", &[]).output().unwrap();
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(64), "{said}");
    assert!(said.contains("it pins a version or label"), "{said}");
}

#[test]
fn a_version_written_after_the_drills_is_not_overwritten() {
    let bed = Bed::start();
    // No sidecar: the files never change, and the drill waits in its window.
    let mut running = Running::spawn(bed.work.path(), bed.drill("api-key", &["--deadline", "5m"]));
    running.wait_log("backend written", LIMIT);
    assert_eq!(bed.current()["Version"], 2);
    assert_eq!(
        bed.moto
            .put_parameter(NAME, "later-Key-999", "SecureString"),
        3
    );
    assert_eq!(running.stop(Signal::INT), Some(130));
    // The restore saw the later version and left it.
    let left = format!("parameter `{NAME}` is at version 3, not at the drill's version 2");
    let logs = running.logs();
    assert!(
        logs.contains(&left) && logs.contains("left as it is"),
        "{logs}"
    );
    let now = bed.current();
    assert_eq!(
        (now["Value"].as_str(), now["Version"].as_u64()),
        (Some("later-Key-999"), Some(3))
    );
}
