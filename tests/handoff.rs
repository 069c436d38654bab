//! The init → sidecar hand-off against real OpenBao (and PostgreSQL for
//! leases): nothing ramsecrets keeps for itself lands in the app's volume,
//! the state lives only in `output.state_dir`, and a state planted by another
//! uid is neither adopted nor able to make the sidecar renew or revoke a lease
//! it does not own; a killed sidecar's successor adopts its lease. Every case checks
//! that no secret reached the log.

mod common;

use std::path::Path;

use base64::Engine;
use common::*;
use rustix::process::Signal;
use serde_json::{json, Value};

const VALUE: &str = "kv-value-4e2d";

fn chown(path: &Path, uid: u32) {
    rustix::fs::chown(path, Some(rustix::fs::Uid::from_raw(uid)), None).unwrap();
}

/// Every regular file under `dir`, recursively, with its content.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

/// The token `init` left in `state.json`.
fn handed_over_token(state: &Path) -> String {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("state.json")).unwrap()).unwrap();
    let b64 = doc["tokens"]["vault"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// OpenBao holding `app/db` and an AppRole login, with the app's output
/// volume and a volume for the state.
struct HandOff {
    bao: Bao,
    work: tempfile::TempDir,
    out: Tmpfs,
    vol: Tmpfs,
    role_id: std::path::PathBuf,
    secret_id: std::path::PathBuf,
}

impl HandOff {
    fn start() -> HandOff {
        let bao = Bao::start();
        let (work, out, vol) = (scratch(), Tmpfs::new("4m"), Tmpfs::new("1m"));
        bao.kv2_put("app/db", json!({ "password": VALUE }));
        bao.app_policy();
        let (role_id, secret_id) = bao.approle(work.path());
        HandOff {
            bao,
            work,
            out,
            vol,
            role_id,
            secret_id,
        }
    }

    /// The config that logs in with AppRole and writes `output`.
    fn config(&self, output: Value) -> String {
        Config::new()
            .source(json!({ "name": "vault", "vault": {
                "address": self.bao.addr,
                "auth": { "approle": { "role_id_file": self.role_id, "secret_id_file": self.secret_id } },
            } }))
            .set("output", output)
            .secret(kv_key("db", "app/db", "password"))
            .yaml()
    }

    /// The config with its state in the state volume.
    fn with_state(&self) -> String {
        self.config(json!({ "dir": self.out.path(), "state_dir": self.state() }))
    }

    fn state(&self) -> std::path::PathBuf {
        self.vol.path().join("state")
    }
}

#[test]
fn without_a_state_dir_init_hands_nothing_over() {
    let h = HandOff::start();
    // No hand-off, said once, and nothing but the secret's file.
    let o = init(
        h.work.path(),
        &h.config(json!({ "dir": h.out.path() })),
        &[],
    );
    assert_exit(&o, 0);
    assert_eq!(text(&o).matches("nothing is handed over").count(), 1);
    let written: Vec<_> = files_under(h.out.path())
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(written, [h.out.path().join("db").display().to_string()]);
}

#[test]
fn a_state_dir_inside_the_output_dir_is_refused() {
    // A config error naming both keys, found before any server is asked.
    let (work, out) = (scratch(), Tmpfs::new("1m"));
    let token = file(work.path(), "token", "t");
    let config = Config::new()
        .source(vault("http://127.0.0.1:1", json!({ "token_file": token })))
        .set(
            "output",
            json!({ "dir": out.path(), "state_dir": out.path().join(".ramsecrets") }),
        )
        .secret(kv_key("db", "app/db", "password"));
    let o = init(work.path(), &config.yaml(), &[]);
    assert_exit(&o, 78);
    assert!(
        text(&o).contains("output.state_dir") && text(&o).contains("output.dir"),
        "{}",
        text(&o)
    );
}

#[test]
fn init_hands_its_token_to_the_sidecar_through_the_state_dir_only() {
    let h = HandOff::start();
    // Its own volume: the token lands there (0400 in a 0700 directory) and nowhere in dir.
    let o = init(h.work.path(), &h.with_state(), &[]);
    assert_exit(&o, 0);
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    let state = h.state();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("state.json")), 0o400);
    let token = handed_over_token(&state);
    assert_eq!(
        h.bao
            .api_as(&token, "GET", "auth/token/lookup-self", Value::Null)
            .0,
        200
    );
    for (path, content) in files_under(h.out.path()) {
        let text = String::from_utf8_lossy(&content);
        assert!(!text.contains(&token), "the token is in {path}");
    }
    assert!(!text(&o).contains(&token) && !text(&o).contains(VALUE));
    // The sidecar adopts the token after checking it.
    let cfg = file(h.work.path(), "config.yaml", &h.with_state());
    let mut run = Running::sidecar(h.work.path(), &cfg);
    assert_eq!(run.stop(Signal::TERM), Some(0));
    assert!(
        run.logs().contains("using the token handed over by init"),
        "{}",
        run.logs()
    );
    assert!(!run.logs().contains(&token) && !run.logs().contains(VALUE));
}

#[test]
fn a_handed_over_token_another_uid_owns_is_not_adopted() {
    let h = HandOff::start();
    let o = init(h.work.path(), &h.with_state(), &[]);
    assert_exit(&o, 0);
    let token = handed_over_token(&h.state());
    chown(&h.state().join("state.json"), 65534);
    // The sidecar logs in afresh.
    let cfg = file(h.work.path(), "config.yaml", &h.with_state());
    let mut run = Running::sidecar(h.work.path(), &cfg);
    assert_eq!(run.stop(Signal::TERM), Some(0));
    let logs = run.logs();
    assert_eq!(
        logs.matches("the hand-off state is not used").count(),
        1,
        "{logs}"
    );
    assert!(logs.contains("owned by uid 65534"), "{logs}");
    assert!(
        !logs.contains("using the token handed over by init"),
        "{logs}"
    );
    assert!(!logs.contains(&token) && !logs.contains(VALUE));
}

/// A sidecar config in `work` for secret `db` on a database lease (revoked at exit), with
/// a token allowed to read, renew and revoke it, writing to `out` and keeping its state in `state`.
fn lease_config(bao: &Bao, work: &Path, out: &Tmpfs, state: &Path) -> std::path::PathBuf {
    // Revocation by the lease's own path (the token is the user's: the sidecar does not
    // revoke it), which a policy can scope to the pod's leases; renewal is in Vault's
    // default policy.
    let app_token = bao.token_with_policy(
        "db",
        "path \"database/creds/app\" { capabilities = [\"read\"] }\n\
         path \"sys/leases/revoke/database/creds/app/*\" { capabilities = [\"update\"] }",
    );
    let token = file(work, "token", &app_token);
    Config::new()
        .source(json!({ "name": "vault", "vault": {
            "address": bao.addr,
            "revoke_on_exit": true,
            "auth": { "token_file": token },
        } }))
        .set("output", json!({ "dir": out.path(), "state_dir": state }))
        .secret(json!({ "name": "db", "read": "database/creds/app", "format": "json" }))
        .write(work, "config.yaml")
}

#[test]
fn a_planted_state_cannot_make_the_sidecar_renew_or_revoke_a_lease_it_does_not_own() {
    let pg = Postgres::start();
    let bao = Bao::start();
    let (work, out, vol) = (scratch(), Tmpfs::new("4m"), Tmpfs::new("1m"));
    bao.database(&pg, "1h", "2h");
    // Someone else's lease, and their token, planted in a state another uid wrote.
    let theirs = bao.api("GET", "database/creds/app", Value::Null);
    let lease_id = theirs["lease_id"].as_str().unwrap().to_owned();
    let user = theirs["data"]["username"].as_str().unwrap().to_owned();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let doc = json!({
        "version": 2,
        "tokens": { "vault": b64(&bao.token) },
        "secrets": { "db": {
            "address": { "read": "database/creds/app" },
            "fetched_at": now_unix(),
            "version": null,
            "lease": { "id": lease_id, "duration": 3600, "renewable": true },
            "expires": null,
            "fields": { "username": b64(&user), "password": b64("planted-pw") }
        } }
    });
    let state = vol.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::write(state.join("state.json"), doc.to_string()).unwrap();
    chown(&state.join("state.json"), 65534);
    let cfg = lease_config(&bao, work.path(), &out, &state);
    assert_eq!(bao.leases("database/creds/app"), 1);
    let mut run = Running::sidecar(work.path(), &cfg);
    // Its own credentials, on its own lease.
    let db: Value = serde_json::from_str(&out.read("db")).unwrap();
    assert_ne!(db["username"], user.as_str());
    assert_eq!(bao.leases("database/creds/app"), 2);
    assert_eq!(run.stop(Signal::TERM), Some(0));
    let logs = run.logs();
    assert!(logs.contains("lease revoked"), "{logs}");
    // Its own lease is revoked at exit; the planted one is untouched.
    assert_eq!(bao.leases("database/creds/app"), 1);
    let (status, _) = bao.api_as(
        &bao.token,
        "PUT",
        "sys/leases/lookup",
        json!({ "lease_id": lease_id }),
    );
    assert_eq!(status, 200);
    assert!(logs.contains("owned by uid 65534"), "{logs}");
    assert!(!logs.contains(&bao.token) && !logs.contains("planted-pw"));
    assert!(!logs.contains(db["password"].as_str().unwrap()));
}

#[test]
fn a_killed_sidecar_restarted_adopts_its_own_lease_and_its_exit_clears_the_state() {
    let pg = Postgres::start();
    let bao = Bao::start();
    let (work, out, vol) = (scratch(), Tmpfs::new("4m"), Tmpfs::new("1m"));
    bao.database(&pg, "1h", "2h");
    let state = vol.path().join("state");
    let cfg = lease_config(&bao, work.path(), &out, &state);
    // No init: the sidecar's own first cycle takes the lease and leaves it in the state.
    let mut first = Running::sidecar(work.path(), &cfg);
    let db = out.read("db");
    assert_eq!(bao.leases("database/creds/app"), 1);
    assert!(state.join("state.json").exists());
    // Killed (as the kubelet's OOM kill or a crash would): the next one adopts the lease.
    first.stop(Signal::KILL);
    let mut second = Running::sidecar(work.path(), &cfg);
    assert_eq!(bao.leases("database/creds/app"), 1);
    assert_eq!(out.read("db"), db);
    assert!(
        second.logs().contains("adopting the lease"),
        "{}",
        second.logs()
    );
    // A clean exit revokes it, and a later sidecar finds no state to adopt.
    assert_eq!(second.stop(Signal::TERM), Some(0));
    assert_eq!(bao.leases("database/creds/app"), 0);
    assert!(!state.join("state.json").exists());
    let logs = second.logs();
    let password: Value = serde_json::from_str(&db).unwrap();
    assert!(!logs.contains(password["password"].as_str().unwrap()));
}

/// A pod's policy needs no right on `sys/leases/revoke`: a sidecar that logged in itself,
/// or adopted the token `init` logged in for, revokes that token at exit
/// (`auth/token/revoke-self`, which Vault's default policy allows), and Vault revokes the
/// database lease with it: the credentials no longer log in.
#[test]
fn revoke_on_exit_needs_no_right_on_sys_leases_revoke() {
    let pg = Postgres::start();
    let bao = Bao::start();
    bao.database(&pg, "1h", "2h");
    bao.api(
        "PUT",
        "sys/policies/acl/app",
        json!({ "policy": "path \"database/creds/app\" { capabilities = [\"read\"] }" }),
    );
    let roles = scratch();
    let (role_id, secret_id) = bao.approle(roles.path());
    for with_init in [true, false] {
        let (work, out, vol) = (scratch(), Tmpfs::new("4m"), Tmpfs::new("1m"));
        let config = Config::new()
            .source(json!({ "name": "vault", "vault": {
                "address": bao.addr,
                "revoke_on_exit": true,
                "auth": { "approle": { "role_id_file": role_id, "secret_id_file": secret_id } },
            } }))
            .set(
                "output",
                json!({ "dir": out.path(), "state_dir": vol.path().join("state") }),
            )
            .secret(json!({ "name": "db", "read": "database/creds/app", "format": "json" }))
            .yaml();
        if with_init {
            assert_exit(&init(work.path(), &config, &[]), 0);
        }
        let cfg = file(work.path(), "config.yaml", &config);
        let mut run = Running::sidecar(work.path(), &cfg);
        assert_eq!(run.logs().contains("adopting the lease"), with_init);
        assert_eq!(bao.leases("database/creds/app"), 1);
        let creds: Value = serde_json::from_str(&out.read("db")).unwrap();
        let login = || {
            let (user, password) = (&creds["username"], &creds["password"]);
            pg.can_login(user.as_str().unwrap(), password.as_str().unwrap())
        };
        assert!(login(), "init: {with_init}");
        assert_eq!(run.stop(Signal::TERM), Some(0));
        let logs = run.logs();
        assert!(
            logs.contains("token revoked") && logs.contains("lease revoked"),
            "init: {with_init}: {logs}"
        );
        assert!(!logs.contains("cannot revoke"), "init: {with_init}: {logs}");
        // Vault revokes a token's leases as it revokes the token, in the background.
        wait_until(
            std::time::Duration::from_secs(60),
            "the lease revoked with its token",
            || bao.leases("database/creds/app") == 0,
        );
        assert!(!login(), "init: {with_init}: the credentials still log in");
        assert!(!logs.contains(creds["password"].as_str().unwrap()));
    }
}
