//! Where each key of a YAML document stands: a map from key paths such as
//! `secrets[2].kv.mount` to line and column, so that errors found after
//! parsing (by serde on a value tree, or by validation) can still point at the text.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A line and column, both counted from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// Key path → position of that key (or sequence item) in the text.
#[derive(Debug, Default)]
pub struct Marks(HashMap<String, Mark>);

impl Marks {
    /// Indexes `text`; a document that does not parse gives an empty index
    /// (serde reports the syntax error itself, with its position).
    pub fn index(text: &str) -> Self {
        let mut walker = Walker::default();
        if Parser::new_from_str(text).load(&mut walker, false).is_err() {
            return Self::default();
        }
        Self(walker.marks)
    }

    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<Mark> {
        let mut p = path;
        loop {
            if let Some(m) = self.0.get(p) {
                return Some(*m);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    marks: HashMap<String, Mark>,
}

impl Walker {
    /// Called for every node that starts; returns the path of a value node,
    /// or `None` when the node was a mapping key.
    fn node(&mut self, scalar: Option<&str>, mark: Mark) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    let k = scalar.unwrap_or("?").to_owned();
                    let child = join(path, &k);
                    self.marks.entry(child).or_insert(mark);
                    *key = Some(k);
                    None
                }
                Some(k) => Some(join(path, &k)),
            },
            Some(Frame::Seq { path, next }) => {
                let child = format!("{path}[{next}]");
                *next += 1;
                self.marks.entry(child.clone()).or_insert(mark);
                Some(child)
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, marker: Marker) {
        let mark = Mark {
            line: marker.line(),
            column: marker.col() + 1,
        };
        match ev {
            Event::Scalar(value, ..) => {
                self.node(Some(&value), mark);
            }
            Event::Alias(_) => {
                self.node(None, mark);
            }
            Event::MappingStart(..) => {
                if let Some(path) = self.node(None, mark) {
                    self.stack.push(Frame::Map { path, key: None });
                }
            }
            Event::SequenceStart(..) => {
                if let Some(path) = self.node(None, mark) {
                    self.stack.push(Frame::Seq { path, next: 0 });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_items() {
        let text = "output:\n  dir: /run\nsecrets:\n  - name: a\n    kv: { mount: secret, path: x }\n  - name: b\n";
        let m = Marks::index(text);
        assert_eq!(m.find("output.dir"), Some(Mark { line: 2, column: 3 }));
        assert_eq!(m.find("secrets[1]").map(|m| m.line), Some(6));
        assert_eq!(
            m.find("secrets[0].kv.path"),
            Some(Mark {
                line: 5,
                column: 26
            })
        );
        assert_eq!(m.find("secrets[1].file"), m.find("secrets[1]"));
    }
}
