//! Property tests of the path rules: an accepted file stays inside `output.dir`.

use super::HEAD;
use crate::config::Config;
use std::path::Path;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever `file` a secret names (built from the characters paths are
    /// made of), an accepted one is plain names only, so it resolves inside
    /// `output.dir` (issue 22: the path rules, beside the config fuzz target).
    #[test]
    fn an_accepted_file_is_plain_names_inside_the_output_dir(
        parts in proptest::collection::vec(
            proptest::sample::select(vec!["a", "b.txt", ".", "..", "/", "//", "~", "\\", " ", "-", ".a", "a/"]),
            0..8,
        )
    ) {
        let file: String = parts.concat();
        let quoted = serde_json::to_string(&file).expect("a JSON string");
        let text = format!("{HEAD}  - name: a\n    source: f\n    secret_id: x\n    file: {quoted}\n");
        if let Ok(c) = Config::parse(&text, Path::new("/cfg")) {
            for f in c.secrets[0].files() {
                proptest::prop_assert!(
                    !f.is_empty()
                        && Path::new(&f)
                            .components()
                            .all(|c| matches!(c, std::path::Component::Normal(_))),
                    "{file:?} was accepted as {f:?}"
                );
            }
        }
    }
}
