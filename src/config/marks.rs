//! Where each key of a YAML document stands: key paths such as
//! `secrets[2].kv.mount` resolve to a line and column, so that errors found
//! after parsing (by serde on a value tree, or by validation) can still point
//! at the text. It reads the events of the parser serde-saphyr builds on
//! (granit-parser), after [`super::yaml::read`] has bounded the text. The
//! index is a tree of path segments, each stored once, so it grows linearly
//! with the text however deep or long its keys.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser};

/// A line and column, both counted from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Key(String),
    Item(usize),
}

/// Key path → position of that key (or sequence item) in the text.
#[derive(Debug, Default)]
pub struct Marks {
    /// (parent node, segment) → (node, position); node 0 is the root.
    children: HashMap<(usize, Segment), (usize, Mark)>,
}

enum Frame {
    Map {
        node: usize,
        /// The key waiting for its value, and where the key stands.
        key: Option<(Segment, Mark)>,
    },
    Seq {
        node: usize,
        next: usize,
    },
}

#[derive(Default)]
struct Walker {
    marks: Marks,
    stack: Vec<Frame>,
}

impl Walker {
    /// Places a node that starts at `mark`; returns its tree node when it is
    /// a value (not a mapping key).
    fn place(&mut self, scalar: Option<&str>, mark: Mark) -> Option<usize> {
        let next_id = self.marks.children.len() + 1;
        let (parent, segment, mark) = match self.stack.last_mut() {
            None => return Some(0),
            Some(Frame::Map { node, key }) => match key.take() {
                None => {
                    *key = Some((Segment::Key(scalar.unwrap_or("?").to_owned()), mark));
                    return None;
                }
                Some((k, at)) => (*node, k, at),
            },
            Some(Frame::Seq { node, next }) => {
                *next += 1;
                (*node, Segment::Item(*next - 1), mark)
            }
        };
        let (id, _) = *self
            .marks
            .children
            .entry((parent, segment))
            .or_insert((next_id, mark));
        Some(id)
    }

    fn event(&mut self, ev: Event, mark: Mark) {
        match ev {
            Event::Scalar(value, ..) => {
                self.place(Some(&value), mark);
            }
            Event::Alias(_) => {
                self.place(None, mark);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A mapping key that is itself a collection has no path.
                let node = self.place(None, mark).unwrap_or(usize::MAX);
                self.stack.push(match ev {
                    Event::MappingStart(..) => Frame::Map { node, key: None },
                    _ => Frame::Seq { node, next: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl Marks {
    /// Indexes `text`, which [`super::yaml::read`] has read (so it is within
    /// its bounds); a text that does not parse gives what was indexed up to
    /// the error.
    pub fn index(text: &str) -> Self {
        let mut walker = Walker::default();
        for (ev, span) in Parser::new_from_str(text).map_while(Result::ok) {
            let mark = Mark {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            walker.event(ev, mark);
        }
        walker.marks
    }

    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<Mark> {
        let (mut node, mut found) = (0, None);
        for segment in segments(path) {
            match self.children.get(&(node, segment)) {
                Some((child, mark)) => (node, found) = (*child, Some(*mark)),
                None => break,
            }
        }
        found
    }
}

/// `secrets[2].kv.mount` → `secrets`, 2, `kv`, `mount`.
fn segments(path: &str) -> impl Iterator<Item = Segment> + '_ {
    path.split('.').filter(|p| !p.is_empty()).flat_map(|part| {
        let mut pieces = part.split('[');
        let key = pieces
            .next()
            .filter(|k| !k.is_empty())
            .map(|k| Segment::Key(k.to_owned()));
        let items = pieces.filter_map(|i| i.strip_suffix(']')?.parse().ok().map(Segment::Item));
        key.into_iter().chain(items)
    })
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
        assert_eq!(m.find("nowhere.at.all"), None);
    }

    #[test]
    fn the_index_stays_linear_and_aliases_have_their_own_place() {
        // Long keys over many items: each key is stored once.
        let long = "k".repeat(1000);
        let text = format!("{long}:\n{}", "  - x\n".repeat(10_000));
        let m = Marks::index(&text);
        assert_eq!(
            m.find(&format!("{long}[9999]")).map(|m| m.line),
            Some(10_001)
        );
        let stored: usize = m
            .children
            .keys()
            .map(|(_, s)| match s {
                Segment::Key(k) => k.len(),
                Segment::Item(_) => 0,
            })
            .sum();
        assert_eq!(stored, long.len());
        let m = Marks::index("d: &d { mode: \"0400\" }\nx: *d\n");
        assert_eq!(m.find("x"), Some(Mark { line: 2, column: 1 }));
        assert_eq!(m.find("x.mode"), m.find("x"));
    }
}
