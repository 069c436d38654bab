//! The book's code blocks, as `tests/book.rs` checks them. Every `yaml` and `sh`
//! block in `docs/` says what it is in an HTML comment on the line before its
//! fence, which the built site does not show:
//!
//! - `<!-- yaml: config -->` a whole config file; `file=NAME` saves it under that name
//!   for the page's `sh: run` blocks;
//! - `<!-- yaml: config-part -->` some top-level sections of a config, checked inside a
//!   small config that supplies the sections it lacks;
//! - `<!-- yaml: values -->` the Helm chart's values;
//! - `<!-- yaml: kubernetes -->` Kubernetes objects or parts of them;
//! - `<!-- yaml: file-source -->` a `file` source's file;
//! - `<!-- sh: run -->` commands that run in the test as written;
//! - `<!-- sh: serve -->` a server that runs until the next `sh: run` block succeeds;
//! - `<!-- sh: vault -->` Vault's side of a guide, run against OpenBao and a real API
//!   server with `VAULT_ADDR`, `VAULT_TOKEN`, `KUBERNETES_HOST`, `KUBERNETES_CA_FILE`
//!   and `REVIEWER_JWT` set;
//! - `<!-- sh: example (why) -->` commands that need what a test cannot have (a
//!   registry, a cluster, a cloud account), and say why.
//!
//! A marker names the fence's language; one that does not is no marker. A block
//! made of a snippet line (`--8<-- "examples/aws.yaml"`) is that file.

use std::path::{Path, PathBuf};

use super::repo;

/// One fenced block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The page, relative to docs/.
    pub page: String,
    /// The line of its opening fence (1-based).
    pub line: usize,
    /// The fence's language: `yaml`, `sh`, `text`, …
    pub lang: String,
    /// The marker's kind (`yaml: config` gives `config`), if it has one.
    pub kind: Option<String>,
    /// The rest of the marker after the kind (`file=my.yaml`, or an example's reason).
    pub detail: String,
    /// The content, with the fence's indentation taken off.
    pub text: String,
}

impl Block {
    /// Where it is, for messages.
    pub fn at(&self) -> String {
        format!("docs/{}:{}", self.page, self.line)
    }
}

/// Every page of the book, relative to docs/, sorted.
pub fn pages() -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let docs = docs();
    let mut out = Vec::new();
    walk(&docs, &docs, &mut out);
    out.sort();
    out
}

/// The book's directory.
pub fn docs() -> PathBuf {
    repo().join("docs")
}

/// The fenced blocks of one page, in order.
pub fn blocks(page: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(docs().join(page)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        let indent = lines[i].len() - trimmed.len();
        let Some(lang) = trimmed.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let open = i;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && lines[i].trim_start() != "```" {
            body.push(
                lines[i]
                    .get(indent..)
                    .unwrap_or_else(|| lines[i].trim_start()),
            );
            i += 1;
        }
        i += 1;
        let marker = lines[..open]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.trim().strip_prefix("<!--")?.strip_suffix("-->"))
            .and_then(|m| m.trim().split_once(':'))
            .filter(|(marked, _)| *marked == lang.trim())
            .map(|(_, rest)| rest.trim().to_owned());
        let (kind, detail) = match marker {
            Some(m) => match m.split_once(' ') {
                Some((k, d)) => (Some(k.to_owned()), d.trim().to_owned()),
                None => (Some(m), String::new()),
            },
            None => (None, String::new()),
        };
        let mut text = body.join("\n") + "\n";
        if let Some(path) = text
            .trim()
            .strip_prefix("--8<-- \"")
            .and_then(|p| p.strip_suffix('"'))
        {
            text = std::fs::read_to_string(repo().join(path))
                .unwrap_or_else(|e| panic!("docs/{page}:{}: {path}: {e}", open + 1));
        }
        out.push(Block {
            page: page.to_owned(),
            line: open + 1,
            lang: lang.trim().to_owned(),
            kind,
            detail,
            text,
        });
    }
    out
}

/// Every block of the book, page by page.
pub fn all_blocks() -> Vec<Block> {
    pages().iter().flat_map(|p| blocks(p)).collect()
}
