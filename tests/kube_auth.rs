//! Kubernetes auth for real: OpenBao's `kubernetes` auth method reviews
//! service-account tokens against the test bed's kube-apiserver, and
//! `ramsecrets init`/`run` log in with tokens from the TokenRequest API.

mod common;

use std::path::Path;
use std::time::Duration;

use ::kube::api::{Api, DeleteParams, PostParams};
use common::kube::{ControlPlane, ISSUER};
use common::*;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use serde_json::json;

const NS: &str = "apps";

/// A config that logs in to `bao` as role `app` with the token in `token_file`.
fn config(bao: &Bao, token_file: &Path, out: &Path) -> Config {
    Config::new()
        .source(vault(
            &bao.addr,
            json!({ "kubernetes": { "role": "app", "token_file": token_file } }),
        ))
        .output(out)
        .secret(kv_key("pw", "app/db", "password"))
}

/// A token of `apps/app` for `audience`, bound to Secret `bound` when given
/// (deleting the Secret invalidates the token).
async fn token_bound(client: &::kube::Client, audience: &str, bound: Option<&str>) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    let bound_object_ref = match bound {
        Some(name) => {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
            let s = secrets
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap(),
                )
                .await
                .unwrap();
            Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Secret".into()),
                name: Some(name.into()),
                uid: s.metadata.uid,
            })
        }
        None => None,
    };
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.into()],
            bound_object_ref,
            expiration_seconds: Some(600),
        },
        ..Default::default()
    };
    let made: TokenRequest = accounts
        .create_subresource("token", "app", &PostParams::default(), &request)
        .await
        .unwrap();
    made.status.unwrap().token
}

#[test]
fn init_logs_in_with_a_token_request_token_and_refuses_bad_ones() {
    let cp = ControlPlane::start();
    let client = cp.client();
    let bao = cp.bao_with_kubernetes_auth(NS, "1h");
    let work = scratch();

    // A real projected-style token for audience `vault`.
    let token = cp.token(NS, "app", "vault");
    let token_file = file(work.path(), "token", &token);
    let out = Tmpfs::new("1m");
    let o = init(
        work.path(),
        &config(&bao, &token_file, out.path()).yaml(),
        &[],
    );
    assert_exit(&o, 0);
    assert_eq!(out.read("pw"), "from-k8s-login");

    // Issued for another audience: the API server's review refuses it.
    let other = cp.token(NS, "app", "not-vault");
    let other_file = file(work.path(), "other-token", &other);
    let out = Tmpfs::new("1m");
    let o = init(
        work.path(),
        &config(&bao, &other_file, out.path()).yaml(),
        &[],
    );
    assert_exit(&o, 77);
    let t = text(&o);
    assert!(
        t.contains("permission denied: kubernetes login") && t.contains("invalid audience"),
        "{t}"
    );

    // Expired: signed with the API server's own key, exactly as it signs, but
    // its `exp` has passed.
    let now = now_unix();
    let expired = cp.sa_signer.sign(json!({
        "iss": ISSUER, "aud": ["vault"], "sub": format!("system:serviceaccount:{NS}:app"),
        "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600,
        "kubernetes.io": { "namespace": NS, "serviceaccount": { "name": "app", "uid": cp.block_on(service_account_uid(&client)) } }
    }));
    let expired_file = file(work.path(), "expired-token", &expired);
    let out = Tmpfs::new("1m");
    let o = init(
        work.path(),
        &config(&bao, &expired_file, out.path()).yaml(),
        &[],
    );
    assert_exit(&o, 77);
    let t = text(&o);
    assert!(
        t.contains("permission denied: kubernetes login") && t.contains("token is expired"),
        "{t}"
    );
    assert!(
        !t.contains(&expired) && !t.contains(&other),
        "a token reached the output: {t}"
    );
}

async fn service_account_uid(client: &::kube::Client) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    accounts.get("app").await.unwrap().metadata.uid.unwrap()
}

#[test]
fn the_sidecar_picks_up_a_rotated_projected_token_at_its_next_login() {
    let cp = ControlPlane::start();
    let client = cp.client();
    let bao = cp.bao_with_kubernetes_auth(NS, "1h");
    let work = scratch();
    let first = cp.block_on(token_bound(&client, "vault", Some("first-binding")));
    let token_file = file(work.path(), "token", &first);
    let out = Tmpfs::new("1m");
    let cfg = config(&bao, &token_file, out.path())
        .set("refresh", json!({ "interval": "1s" }))
        .write(work.path(), "sidecar.yaml");
    let mut run = Running::sidecar(work.path(), &cfg);
    assert_eq!(out.read("pw"), "from-k8s-login");

    // The kubelet's rotation: a new token replaces the file (renamed into
    // place); the old token then dies with the object it was bound to.
    let second = cp.block_on(token_bound(&client, "vault", Some("second-binding")));
    let staged = file(work.path(), "token.new", &second);
    std::fs::rename(&staged, &token_file).unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    cp.block_on(secrets.delete("first-binding", &DeleteParams::default()))
        .unwrap();
    // Any login from now on can only have used the new token; revoking the
    // sidecar's Vault token makes its next read log in again.
    let logins = || run_logins(&run);
    let before = logins();
    bao.api(
        "PUT",
        "sys/leases/revoke-prefix/auth/kubernetes/login",
        json!({}),
    );
    wait_until(
        Duration::from_secs(90),
        "a login after the rotation",
        || logins() > before,
    );
    bao.kv2_put("app/db", json!({ "password": "after-rotation" }));
    wait_until(
        Duration::from_secs(60),
        "the value read after the re-login",
        || out.read("pw") == "after-rotation",
    );
    assert!(
        run.stop(rustix::process::Signal::TERM) == Some(0),
        "{}",
        run.logs()
    );
    assert!(!run.logs().contains(&second), "a token reached the logs");
}

/// How many times the sidecar has logged in.
fn run_logins(run: &Running) -> usize {
    run.logs().matches("logged in").count()
}
