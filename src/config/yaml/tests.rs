use super::*;

fn refused(text: &str) -> Refused {
    read::<serde_json::Value>(text).unwrap_err()
}

#[test]
fn deep_flow_nesting_is_refused_with_its_line_before_any_parser() {
    let deep = format!("a: 1\nb: {}", "[".repeat(100_000));
    let e = nesting(&deep).unwrap_err();
    assert!(e.contains("more than 64") && e.contains("line 2"), "{e}");
    let closed = "[".repeat(64) + &"]".repeat(64);
    assert_eq!(nesting(&format!("x: {closed}\ny: {closed}\n")), Ok(()));
    // Closing brackets first never lower the count below zero.
    let sneaky = "]".repeat(100) + &"{".repeat(65);
    assert!(nesting(&sneaky).is_err());
    assert_eq!(refused(&deep).at, None);
}

#[test]
fn says_what_is_wrong_and_where_without_the_text() {
    for (text, at, want) in [
        (
            "output:\n    dir: /x\n  mode: \"0400\"\n",
            (3, 3),
            "indented differently from the keys",
        ),
        ("a: b: c\n", (1, 5), "quote a value that contains `: `"),
        ("a:\n\tb: 1\n", (2, 2), "not tabs"),
        ("- a\nb: 1\n", (2, 1), "list items above it"),
        (
            "a: [1, 2\n",
            (1, 4),
            "the list opened here with `[` is not closed",
        ),
        (
            "a: {b: 1\n",
            (1, 4),
            "the mapping opened here with `{` is not closed",
        ),
        (
            "a: \"secret\n",
            (1, 4),
            "the quote opened here is not closed",
        ),
        ("a: @secret\n", (1, 4), "cannot start a value"),
        ("a: 1\nb: 2\na: 3\n", (3, 1), "the key `a` is given twice"),
        ("[a]: 1\n", (1, 1), "expected a single value here"),
        ("~: 1\n", (1, 1), "a key is empty or null"),
        ("a: 1\n---\nb: 2\n", (3, 1), "a second document"),
        ("a: *nowhere\n", (1, 4), "no anchor"),
    ] {
        let e = refused(text);
        assert_eq!(e.at, Some(at), "{text:?}: {e}");
        assert!(e.message.contains(want), "{text:?}: {e}");
        assert!(!e.message.contains("secret"), "{text:?}: {e}");
        assert_eq!(
            e.to_string(),
            format!("line {}, column {}: {}", at.0, at.1, e.message)
        );
    }
}

#[test]
fn values_are_read_by_yaml_1_2_core_rules() {
    let text = "a: yes\nb: n\nc: on\nd: 0440\ne: 1_000\nf: 440\ng: true\nh: 0x1F\ni: ~\nj: 1.50\n";
    let v: serde_json::Value = read(text).unwrap();
    let want = serde_json::json!({
        "a": "yes", "b": "n", "c": "on", "d": "0440", "e": "1_000",
        "f": 440, "g": true, "h": 31, "i": null, "j": 1.5,
    });
    assert_eq!(v, want);
}

#[test]
fn anchors_aliases_and_merge_keys_read_within_the_bounds() {
    let text = "d: &d { mode: \"0400\" }\nx: *d\ny: { <<: *d, file: f }\n";
    let v: serde_json::Value = read(text).unwrap();
    assert_eq!(v["x"]["mode"], "0400");
    assert_eq!(v["y"], serde_json::json!({ "mode": "0400", "file": "f" }));
}

#[test]
fn alias_bombs_and_deep_nesting_are_refused_naming_the_bound() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let e = refused(&bomb);
    assert!(
        e.message
            .contains("more than 200000 values once its aliases are expanded"),
        "{e}"
    );
    assert!(e.at.is_some(), "{e}");
    let mut deep = String::new();
    for level in 0..100 {
        deep.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
    }
    let e = refused(&deep);
    assert_eq!(e.message, "not accepted: it nests deeper than 64 levels");
    assert_eq!(e.at.map(|(line, _)| line), Some(65));
    // Near the bound is fine.
    let mut ok = String::new();
    for level in 0..60 {
        ok.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
    }
    assert!(read::<serde_json::Value>(&ok).is_ok());
}

/// A `file` source's document: address → field → value, tags kept.
type SecretsFile = std::collections::HashMap<
    String,
    std::collections::HashMap<String, serde_saphyr::Tagged<Option<String>>>,
>;

#[test]
fn no_error_quotes_a_value_of_a_secrets_file() {
    // `V` is a secret value, put where each kind of mistake meets it (keys
    // are addresses and field names, which messages may name).
    let broken = [
        "a/b:\n  password: V\n\tuser: x\n",
        "a/b:\n\tpassword: V\n",
        "a/b:\n  password: \"V\n",
        "a/b:\n  password: 'V\n",
        "a/b:\n  password: \"V\" x\n",
        "a/b:\n  password: 'V' x\n",
        "a/b:\n  password: \"V\\q\"\n",
        "a/b:\n  password: V\n   user: x\n",
        "a/b:\n  password: V\n user: x\n",
        "a/b:\n    password: V\n  user: x\n",
        "a/b:\n  password: V\n  password: x\n",
        "a/b:\n  password: x\n  password: V\n",
        "a/b:\n  password: V: x\n",
        "a/b:\n  password: x V: y\n",
        "a/b:\n  password: [V\n",
        "a/b:\n  password: [V]]\n",
        "a/b:\n  password: {k: V\n",
        "a/b:\n  password: {V}}\n",
        "a/b:\n  password: @V\n",
        "a/b:\n  password: `V\n",
        "a/b:\n  password: %V\n",
        "a/b:\n  password: *V\n",
        "a/b:\n  password: &V\n  user: *V\n  user: x\n",
        "a/b:\n  - V\n",
        "a/b: V\n",
        "V\n",
        "- V\n",
        "[V]\n",
        "a/b:\n  password: V\n---\nc/d: V\n",
        "a/b:\n  password: |\n V\n  user: x\n",
        "a/b:\n  password: >\n\tV\n",
        "a/b:\n  password: |x\n    V\n",
        "a/b:\n  V\n  user: x\n",
        "a/b:\n  password:\n    - V\n    k: v\n",
        "a/b:\n  password: V\n  : x\n",
        "a/b:\n  password: [V, {k: }\n",
        "a/b:\n  password: \"V\"\n  \"user\n",
        "%YAML V\n---\na/b: {}\n",
        "a/b:\n  password: V\n...\nV\n",
        "a/b:\n  password: V # comment\n  user: [x,\n",
        "a/b:\n  password: V\u{0}\n",
        "a/b:\n  password: \"V\u{7}\"\n",
    ];
    for value in ["Zq7xK9wPv3", "Zq7x K9wPv3", "Zq7x-K9w.Pv3"] {
        // Any five characters of the value in a row would say too much.
        let windows: Vec<String> = value
            .chars()
            .collect::<Vec<_>>()
            .windows(5)
            .map(|w| w.iter().collect())
            .collect();
        for template in broken {
            let text = template.replace('V', value);
            let file = read::<SecretsFile>(&text);
            assert!(file.is_err(), "{text:?} reads");
            for e in [file.err(), read::<serde_json::Value>(&text).err()]
                .iter()
                .flatten()
            {
                let said = e.to_string();
                assert!(
                    !windows.iter().any(|w| said.contains(w.as_str())),
                    "{text:?}: {said}"
                );
            }
        }
    }
}
