//! The plan's rules under paused time, with fixed jitter draws: what a
//! success, a renewal, a check, a failure, a `refreshNow` and a changed
//! source do to a group, and what a round picks.

use std::path::Path;

use super::*;
use crate::secret::Fields;

const S: fn(u64) -> Duration = Duration::from_secs;

/// Groups: 0 = `a` and `b` (one KV address, source `f`), 1 = `c` (a leased
/// read, source `v`), 2 = `d` (another KV address, source `f`, polled every 20 s).
fn plan() -> Plan {
    let config = Config::parse(
        "sources:\n  - name: f\n    file: { path: x }\n  - name: v\n    vault:\n      address: http://127.0.0.1:8200\n      auth: { token_file: /t }\nrefresh: { interval: 10s, renew_at: 0.5 }\noutput: { dir: /x }\nsecrets:\n  - name: a\n    source: f\n    kv: { mount: secret, path: db }\n  - name: b\n    source: f\n    kv: { mount: secret, path: db }\n    key: password\n  - name: c\n    source: v\n    read: database/creds/app\n  - name: d\n    source: f\n    kv: { mount: secret, path: other }\n    refresh: 20s\n",
        Path::new("/"),
    )
    .unwrap();
    let now = Instant::now();
    let mut plan = Plan::new(Arc::new(config), Draws::fixed(0.5, 2), 2, now);
    for members in crate::engine::fetch::groups(&plan.config) {
        plan.groups.push(Group::new(members, now));
    }
    plan
}

fn paces() -> Vec<Pace> {
    vec![Pace::default(); 2]
}

fn value() -> Fetched {
    Fetched::fields(Fields::new())
}

fn leased(secs: u64) -> Fetched {
    let mut f = value();
    f.lease = Some(Lease {
        id: "l".into(),
        duration: S(secs),
        renewable: true,
    });
    f
}

#[tokio::test(start_paused = true)]
async fn a_fetch_clears_failures_and_polls_again_an_interval_later() {
    let mut plan = plan();
    plan.groups[0].failures = 3;
    let now = Now::read();
    plan.fetched(0, value().into(), &paces(), now);
    let g = &plan.groups[0];
    assert_eq!(
        (g.failures, g.step, g.due),
        (0, Step::Fetch, now.at + S(10))
    );
    // A pushed-back source stretches the interval.
    let stretched = [
        Pace {
            stretch: 2.0,
            closed_until: None,
        },
        Pace::default(),
    ];
    plan.fetched(2, value().into(), &stretched, now);
    assert_eq!(plan.groups[2].due, now.at + S(40));
}

#[tokio::test(start_paused = true)]
async fn a_renewal_shorter_than_asked_reads_new_credentials_next() {
    let mut plan = plan();
    let now = Now::read();
    plan.fetched(1, leased(100).into(), &paces(), now);
    // Checked for revocation at the poll interval until the renewal is due.
    assert_eq!(
        (plan.groups[1].step, plan.groups[1].due),
        (Step::Revalidate, now.at + S(10))
    );
    let full = Lease {
        id: "l".into(),
        duration: S(100),
        renewable: true,
    };
    assert!(!plan.renewed(1, full, &paces(), now));
    let short = Lease {
        id: "l".into(),
        duration: S(20),
        renewable: true,
    };
    assert!(plan.renewed(1, short, &paces(), now));
    // Renewal due at half of 20 s, the same time as the check: read anew.
    assert_eq!(
        (plan.groups[1].step, plan.groups[1].due),
        (Step::Fetch, now.at + S(10))
    );
}

#[tokio::test(start_paused = true)]
async fn a_revoked_lease_is_read_anew_at_once() {
    let mut plan = plan();
    let now = Now::read();
    plan.fetched(1, leased(100).into(), &paces(), now);
    plan.revalidated(1, true, &paces(), now);
    assert_eq!(plan.groups[1].step, Step::Revalidate);
    plan.revalidated(1, false, &paces(), now);
    assert_eq!(
        (plan.groups[1].step, plan.groups[1].due),
        (Step::Fetch, now.at)
    );
}

#[tokio::test(start_paused = true)]
async fn failures_of_one_cause_share_a_wait_and_leases_retry_before_their_end() {
    let mut plan = plan();
    plan.fetched(1, leased(10).into(), &paces(), Now::read());
    let now = Now::read();
    let mut waits = Waits::new();
    let first = plan.failed(0, "down", &mut waits, &paces(), now);
    assert_eq!((first.failures, first.retry), (1, S(1)));
    // Another group failing for the same cause waits as long, although
    // its interval differs; a second failure doubles.
    plan.groups[2].failures = 1;
    let same = plan.failed(2, "down", &mut waits, &paces(), now);
    assert_eq!((same.failures, same.retry), (2, S(1)));
    let mut waits = Waits::new();
    let second = plan.failed(0, "down", &mut waits, &paces(), now);
    assert_eq!((second.retry, plan.groups[0].due), (S(2), now.at + S(2)));
    // A lease with 10 s left: never past half of it, and an emergency.
    plan.groups[1].failures = 8;
    let lease = plan.failed(1, "down", &mut Waits::new(), &paces(), now);
    assert_eq!(lease.retry, S(5));
    assert_eq!(lease.expiring, Some(S(10)));
}

#[tokio::test(start_paused = true)]
async fn refresh_now_makes_a_static_secret_due_and_serves_a_lease_as_held() {
    let mut plan = plan();
    let now = Now::read();
    plan.fetched(0, value().into(), &paces(), now);
    plan.fetched(1, leased(100).into(), &paces(), now);
    tokio::time::advance(S(3)).await;
    let later = Instant::now();
    assert_eq!(plan.refresh_now("b", later), Refresh::Due(0));
    assert_eq!(
        (plan.groups[0].step, plan.groups[0].due),
        (Step::Fetch, later)
    );
    assert_eq!(plan.refresh_now("c", later), Refresh::Held);
    assert_eq!(plan.groups[1].step, Step::Revalidate);
    assert_eq!(plan.refresh_now("nope", later), Refresh::Unknown);
}

#[tokio::test(start_paused = true)]
async fn a_changed_source_makes_its_groups_due_now() {
    let mut plan = plan();
    let now = Now::read();
    for g in 0..3 {
        let f = if g == 1 { leased(100) } else { value() };
        plan.fetched(g, f.into(), &paces(), now);
    }
    for source in 0..2 {
        plan.token_kept(source, Some(S(600)), now.at);
    }
    tokio::time::advance(S(2)).await;
    let later = Instant::now();
    plan.source_changed(0, later);
    let due: Vec<Instant> = plan.groups.iter().map(|g| g.due).collect();
    assert_eq!(due, [later, now.at + S(10), later]);
    assert_eq!(plan.next_due(later), later);
}

#[tokio::test(start_paused = true)]
async fn a_round_picks_what_is_due_and_spreads_a_held_sources_others() {
    let mut plan = plan();
    let now = Now::read();
    plan.fetched(0, value().into(), &paces(), now);
    plan.fetched(1, leased(100).into(), &paces(), now);
    plan.fetched(2, value().into(), &paces(), now);
    tokio::time::advance(S(10)).await;
    let now = Now::read();
    // Groups 0 and 1 (its lease's check) are due, group 2 not.
    assert_eq!(plan.pick(now, &paces()), [0, 1]);
    // Source `f` holds requests back for 4 s: its first due group goes as
    // the probe, the other moves to a point spread from when it reopens.
    plan.groups[2].due = now.at;
    let held = [
        Pace {
            stretch: 1.0,
            closed_until: Some(now.at + S(4)),
        },
        Pace::default(),
    ];
    assert_eq!(plan.pick(now, &held), [0, 1]);
    assert_eq!(plan.groups[2].due, now.at + S(4) + S(10));
    assert!(!plan.groups[2].moved, "held back is not late");
}

#[tokio::test(start_paused = true)]
async fn tokens_are_kept_when_due_and_backed_off_after_a_failure() {
    let mut plan = plan();
    let now = Instant::now();
    assert_eq!(plan.tokens_due(now), [0, 1]);
    plan.token_kept(0, Some(S(600)), now);
    plan.token_kept(1, Some(Duration::ZERO), now);
    assert_eq!(plan.tokens_due(now), Vec::<usize>::new());
    assert_eq!(plan.tokens_due(now + S(1)), [1]);
    // After a failure: the fourth step of a 1 s backoff, drawn at 0.5.
    plan.token_kept(1, None, now);
    assert_eq!(plan.tokens_due(now + S(5)), Vec::<usize>::new());
    assert_eq!(plan.tokens_due(now + S(6)), [1]);
}
