//! The layering rule of docs/architecture.md holds: its "Layers" table says, for
//! each module, which of the crate's modules it may not import, and no file under
//! it names one of them (`crate::engine`, or `engine` in `use crate::{…}`), in
//! code or in a doc link. A failure names the file, the line and the rule.

use std::path::{Path, PathBuf};

/// The rows of the "Layers" table: a path under `src/` and the modules it may
/// not import.
fn rules(architecture: &str) -> Vec<(String, Vec<String>)> {
    let section = architecture
        .split("\n## Layers\n")
        .nth(1)
        .expect("docs/architecture.md has a '## Layers' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    section
        .lines()
        .filter(|l| l.starts_with("| `src/"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let paths = ticked(cells[1]);
            assert_eq!(paths.len(), 1, "one path per row: {l}");
            let forbidden = ticked(cells[2]);
            assert!(
                !forbidden.is_empty(),
                "a row names what it may not import: {l}"
            );
            (paths[0].clone(), forbidden)
        })
        .collect()
}

/// Every `.rs` file at `path` (a file, or a folder walked recursively).
fn files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The crate's top-level modules a line names.
fn named(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in line.match_indices("crate::") {
        let rest = &line[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or(group);
            out.extend(
                group
                    .split(',')
                    .filter_map(|p| p.trim().split("::").next())
                    .filter(|m| !m.is_empty())
                    .map(str::to_string),
            );
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

#[test]
fn no_module_imports_what_the_architecture_forbids() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let rules = rules(&architecture);
    assert!(rules.len() >= 5, "the Layers table has its rows: {rules:?}");
    let mut broken = Vec::new();
    for (path, forbidden) in &rules {
        let at = root.join(path.trim_end_matches('/'));
        assert!(
            at.exists(),
            "the Layers table names {path}, which does not exist"
        );
        for file in files(&at) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                for module in named(line) {
                    if forbidden.contains(&module) {
                        broken.push(format!(
                            "{}:{}: names crate::{module}, which {path} may not import: {}",
                            file.strip_prefix(root).unwrap().display(),
                            n + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the Layers table of docs/architecture.md:\n{}",
        broken.join("\n")
    );
}

#[test]
fn named_reads_paths_and_groups() {
    assert_eq!(named("use crate::engine::backoff::Gate;"), ["engine"]);
    assert_eq!(
        named("use crate::{output, proxy::x, source};"),
        ["output", "proxy", "source"]
    );
    assert_eq!(named("/// see [`Gate`](crate::backoff::Gate)"), ["backoff"]);
    assert!(named("use super::engine;").is_empty());
}
