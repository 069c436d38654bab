//! YAML syntax errors in plain words, for the config file and the `file`
//! source: what is wrong and what usually causes it (most often indentation).
//! The caller says where, once; libyaml's own locations are left out. Deep
//! flow nesting is refused before any YAML parser runs ([`nesting`]).

/// Deepest `[`/`{` nesting accepted. YAML parsers take quadratic time over
/// deep nesting (100,000 `[` took 18 s to refuse); no config or secrets file
/// needs more than a few levels.
pub const MAX_NESTING: usize = 64;

/// Refuses `text` when more than [`MAX_NESTING`] `[` or `{` are open at once,
/// naming the line. Every bracket counts, quoted or not: the count can only
/// over-report, never let deep nesting through.
pub fn nesting(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut line = 1usize;
    for c in text.bytes() {
        match c {
            b'\n' => line += 1,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "more than {MAX_NESTING} lists or mappings (`[`, `{{`) open at once at line {line}; \
                         refused before parsing"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// What `e` means, without its locations.
pub fn explain(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    let (problem, context) = match text.split_once(", while ") {
        Some((p, c)) => (p, Some(c)),
        None => (text.as_str(), None),
    };
    let problem = problem.split(" at line ").next().unwrap_or(problem);
    // Where the enclosing list, mapping or quote was opened, when libyaml says.
    let opened = context
        .and_then(|c| c.split_once(" at line "))
        .and_then(|(_, at)| at.split_once(" column "))
        .map(|(line, column)| format!(" at line {line}, column {column}"))
        .unwrap_or_default();
    match problem {
        "did not find expected key" => "a line is indented differently from the keys above it; \
            keys of one mapping start at the same indentation, and a nested key further right than its parent"
            .into(),
        "mapping values are not allowed in this context" => "a `:` where none can be; \
            check the indentation (a nested key deeper than its neighbours, or not lined up under its list item), \
            or quote a value that contains `: `"
            .into(),
        "found character that cannot start any token" => "a character that cannot start a value; \
            indent with spaces, not tabs, and quote values that start with `@`, `` ` `` or `%`"
            .into(),
        "did not find expected '-' indicator" => "a line is indented differently from the list items above it; \
            the items of one list start with `- ` at the same indentation"
            .into(),
        "did not find expected ',' or ']'" => format!("the list opened with `[`{opened} is not closed with `]`"),
        "did not find expected ',' or '}'" => format!("the mapping opened with `{{`{opened} is not closed with `}}`"),
        "found unexpected end of stream" => format!("the file ends inside a value{opened}; a quote is not closed"),
        other => format!("{other}; check the indentation around it"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(text: &str) -> String {
        explain(&serde_yaml::from_str::<serde_yaml::Value>(text).unwrap_err())
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
    }

    #[test]
    fn says_what_is_wrong_without_locations() {
        for (text, want) in [
            (
                "output:\n    dir: /x\n  mode: \"0400\"\n",
                "indented differently from the keys",
            ),
            ("a: b: c\n", "quote a value that contains `: `"),
            ("a:\n\tb: 1\n", "not tabs"),
            ("- a\nb: 1\n", "list items above it"),
            (
                "a: [1, 2\n",
                "opened with `[` at line 1, column 4 is not closed",
            ),
            ("a: \"x\n", "a quote is not closed"),
        ] {
            let s = said(text);
            assert!(s.contains(want), "{text:?}: {s}");
            assert!(
                !s.contains(" at line 2") && !s.contains("while"),
                "{text:?}: {s}"
            );
        }
    }
}
