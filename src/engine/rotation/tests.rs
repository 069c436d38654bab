//! The engine against a stand-in source: one fetch per address, one notice per round.

use std::time::Duration;

use super::*;
use crate::source::fake::Counting;

/// The engine over one stand-in source, its first cycle done.
async fn start(
    config: Arc<Config>,
    source: &Arc<Counting>,
    dir: Option<Arc<OutputDir>>,
    child: Option<mpsc::UnboundedSender<String>>,
) -> Engine {
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = Arc::new(Metrics::new(false));
    Engine::start(config, vec![source.clone()], dir, metrics, deadline, child)
        .await
        .unwrap()
}

/// A proxy-only config over a `file` source with `secrets` (YAML list items).
fn proxy_only(secrets: &str) -> Arc<Config> {
    let yaml =
        String::from("sources:\n  - file: { path: x }\nproxy: { token_file: t }\nsecrets:\n")
            + secrets;
    Arc::new(Config::parse(&yaml, std::path::Path::new("/nonexistent")).unwrap())
}

#[tokio::test]
async fn a_round_fetches_each_address_once_and_tells_the_child_once() {
    let (config, tmp, dir) = crate::engine::cycle::tests::setup();
    let source = Arc::new(Counting::default());
    source.set("one");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut engine = start(Arc::new(config), &source, Some(Arc::new(dir)), Some(tx)).await;
    assert_eq!(engine.plan.groups.len(), 2);
    assert_eq!(source.fetches(), 2);
    source.set("two");
    for g in &mut engine.plan.groups {
        g.due = Instant::now();
    }
    engine.round().await;
    assert_eq!(source.fetches(), 4);
    for file in ["a", "b", "d"] {
        let text = std::fs::read_to_string(tmp.path().join(file)).unwrap();
        assert!(text.contains("two"), "{file}: {text}");
    }
    // The child hears once the round's actions (on a task of their own) ran,
    // and what changed.
    assert_eq!(
        rx.recv().await.as_deref(),
        Some("secret `a`, secret `b`, secret `c`, secret `d`")
    );
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(rx.try_recv().is_err(), "the child was told twice");
}

#[tokio::test]
async fn without_output_a_new_value_goes_to_the_snapshots_and_the_child_only() {
    let config = proxy_only("  - name: a\n    kv: { mount: secret, path: db }\n");
    let source = Arc::new(Counting::default());
    source.set("one");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut engine = start(config, &source, None, Some(tx)).await;
    let store = engine.subscribe();
    let password = |s: &Snapshots| s.borrow().get("a").unwrap().fetched.fields["password"].clone();
    assert_eq!(password(&store).expose(), b"one");
    source.set("two");
    engine.plan.groups[0].due = Instant::now();
    engine.round().await;
    assert_eq!(password(&store).expose(), b"two");
    assert!(rx.recv().await.is_some(), "the child was not told");
    // The same value again is no change.
    engine.plan.groups[0].due = Instant::now();
    engine.round().await;
    assert_eq!(source.fetches(), 3);
    assert!(rx.try_recv().is_err(), "the child was told of no change");
}

#[tokio::test]
async fn a_reload_publishes_the_new_config_with_the_values_it_keeps() {
    let a = "  - name: a\n    kv: { mount: secret, path: db }\n";
    let source = Arc::new(Counting::default());
    source.set("one");
    let engine = start(proxy_only(a), &source, None, None).await;
    let snapshots = engine.subscribe();
    let next =
        proxy_only(&(a.to_owned() + "  - name: b\n    kv: { mount: secret, path: other }\n"));
    let engine = engine.reload(next.clone()).await;
    let now = snapshots.borrow().clone();
    assert!(Arc::ptr_eq(&now.config, &next));
    // `a` kept what it held, unfetched; `b` is read in the next round.
    assert_eq!(source.fetches(), 1);
    assert_eq!(now.get("a").unwrap().revision, 1);
    assert!(now.get("b").is_none());
    assert!(engine.plan.groups[1].due <= Instant::now());
}
