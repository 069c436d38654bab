//! AWS Secrets Manager faults against a real moto server behind a
//! recording proxy that injects them: retries with backoff, giving up at the
//! deadline, and the exit code of each fault.

mod common;

use std::process::Output;

use common::moto::{AwsEnv, Moto};
use common::recorder::Recorder;
use common::*;
use serde_json::{json, Value};

/// moto behind a recording proxy that injects faults, holding `f/db`
/// (`pw-fault`, and `pw-staged` at AWSPENDING).
struct FaultBed {
    proxy: Recorder,
    work: tempfile::TempDir,
    out: Tmpfs,
    env: AwsEnv,
    _moto: Moto,
}

impl FaultBed {
    fn start() -> FaultBed {
        let moto = Moto::start();
        let proxy = Recorder::start(moto.port);
        moto.create("f/db", r#"{"password":"pw-fault"}"#);
        moto.put("f/db", r#"{"password":"pw-staged"}"#, &["AWSPENDING"]);
        FaultBed {
            proxy,
            work: scratch(),
            out: Tmpfs::new("4m"),
            env: AwsEnv::keys(),
            _moto: moto,
        }
    }

    /// `init` on `f/db` from `endpoint`, its `secret` as given.
    fn init_at(&self, endpoint: &str, secret: Value, extra: &[&str]) -> Output {
        let config = Config::new()
            .source(
                json!({ "aws_secrets_manager": { "region": "us-east-1", "endpoint": endpoint } }),
            )
            .output(self.out.path())
            .secret(secret);
        self.env.init(self.work.path(), &config.yaml(), extra)
    }

    /// `init` on `f/db`'s password (at `stage`, when given) through the proxy.
    fn init(&self, stage: Option<&str>, extra: &[&str]) -> Output {
        let mut secret = json!({ "name": "db", "secret_id": "f/db", "key": "password" });
        if let Some(stage) = stage {
            secret["version_stage"] = json!(stage);
        }
        self.init_at(&self.proxy.url(), secret, extra)
    }
}

#[test]
fn throttling_and_server_errors_are_retried() {
    let bed = FaultBed::start();
    // Throttled twice, a 500 once: retried, then written.
    bed.proxy
        .fail("BatchGetSecretValue", 400, "ThrottlingException", 2);
    bed.proxy
        .fail("BatchGetSecretValue", 500, "InternalServiceError", 1);
    let o = bed.init(None, &[]);
    assert_exit(&o, 0);
    assert_eq!(bed.out.read("db"), "pw-fault");
    assert_eq!(
        bed.proxy.count("BatchGetSecretValue"),
        4,
        "{:?}",
        bed.proxy.calls()
    );
}

#[test]
fn throttled_for_good_init_gives_up_at_the_deadline_with_69() {
    let bed = FaultBed::start();
    // Each throttle holds the source back at least a second, so 6s leave
    // room for 6 calls at most; 6s (not less) so that a debug build starting
    // on two busy cores still gets its first answer before the deadline.
    bed.proxy.fail(
        "BatchGetSecretValue",
        400,
        "ThrottlingException",
        usize::MAX,
    );
    let o = bed.init(None, &["--timeout", "6s"]);
    assert_exit(&o, 69);
    assert!(
        text(&o).contains("backend asked to slow down: secret_id `f/db`: BatchGetSecretValue of 1 secret(s): ThrottlingException"),
        "{}",
        text(&o)
    );
    let tries = bed.proxy.count("BatchGetSecretValue");
    assert!(
        (1..=6).contains(&tries),
        "a second between throttled calls: {tries} calls in 6s"
    );
}

#[test]
fn aws_faults_map_to_exit_codes() {
    let bed = FaultBed::start();
    // AccessDenied on one secret → 77; a KMS failure → 65, said plainly.
    bed.proxy
        .fail("GetSecretValue", 400, "AccessDeniedException", 1);
    let o = bed.init(Some("AWSPENDING"), &[]);
    assert_exit(&o, 77);
    assert!(
        text(&o).contains("permission denied: secret_id `f/db` (AWSPENDING)"),
        "{}",
        text(&o)
    );
    bed.proxy
        .fail("GetSecretValue", 400, "DecryptionFailure", 1);
    let o = bed.init(Some("AWSPENDING"), &[]);
    assert_exit(&o, 65);
    assert!(
        text(&o).contains("secret_id `f/db` (AWSPENDING): KMS could not decrypt the secret"),
        "{}",
        text(&o)
    );

    // Nothing listening: unreachable → 69.
    let just_db = json!({ "name": "db", "secret_id": "f/db" });
    let closed = format!("http://127.0.0.1:{}", free_port());
    let o = bed.init_at(&closed, just_db.clone(), &["--timeout", "2s"]);
    assert_exit(&o, 69);
    assert!(text(&o).contains("backend unavailable"), "{}", text(&o));
    assert!(!text(&o).contains("pw-"), "{}", text(&o));

    // A server that accepts and never answers: 69 at the deadline, not a hang.
    let (port, _held) = hanging_server();
    let hung = format!("http://127.0.0.1:{port}");
    let o = bed.init_at(&hung, just_db, &["--timeout", "2s"]);
    assert_exit(&o, 69);
    assert!(
        text(&o).contains("secret_id `f/db`: no answer before the deadline"),
        "{}",
        text(&o)
    );
}
