//! Where each key of a YAML document stands: key paths such as
//! `secrets[2].kv.mount` resolve to a line and column, so that errors found
//! after parsing (by serde on a value tree, or by validation) can still point
//! at the text. The index is a tree of path segments, each stored once, so it
//! grows linearly with the text however deep or long its keys; it also bounds
//! what the text may expand to (nesting depth, and nodes with every alias
//! expanded), so that a small document cannot make the parser that follows
//! build a huge tree.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};

/// Deepest nesting accepted (a config needs about six levels).
pub const MAX_DEPTH: usize = 64;
/// Most nodes a document may hold with every alias expanded.
pub const MAX_NODES: usize = 200_000;

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

/// Why a document is refused before it is parsed into values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    /// Nested too deep.
    #[error("it nests deeper than {MAX_DEPTH} levels (line {0})")]
    Depth(usize),
    /// Too many nodes once aliases are expanded.
    #[error("it holds more than {MAX_NODES} values once its aliases are expanded (line {0}); a config needs far fewer")]
    Nodes(usize),
}

enum Frame {
    Map {
        node: usize,
        /// The key waiting for its value, and where the key stands.
        key: Option<(Segment, Mark)>,
        anchor: usize,
        size: usize,
    },
    Seq {
        node: usize,
        next: usize,
        anchor: usize,
        size: usize,
    },
}

impl Frame {
    fn size(&mut self) -> &mut usize {
        match self {
            Frame::Map { size, .. } | Frame::Seq { size, .. } => size,
        }
    }
}

#[derive(Default)]
struct Walker {
    marks: Marks,
    stack: Vec<Frame>,
    nodes: usize,
    /// Expanded size of each anchored node, by anchor id.
    anchored: HashMap<usize, usize>,
}

impl Walker {
    /// Places a node that starts at `mark`; returns its tree node when it is
    /// a value (not a mapping key).
    fn place(&mut self, scalar: Option<&str>, mark: Mark) -> Option<usize> {
        let next_id = self.marks.children.len() + 1;
        let (parent, segment, mark) = match self.stack.last_mut() {
            None => return Some(0),
            Some(Frame::Map { node, key, .. }) => match key.take() {
                None => {
                    *key = Some((Segment::Key(scalar.unwrap_or("?").to_owned()), mark));
                    return None;
                }
                Some((k, at)) => (*node, k, at),
            },
            Some(Frame::Seq { node, next, .. }) => {
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

    /// Counts `n` more expanded nodes in the document.
    fn grow(&mut self, n: usize, line: usize) -> Result<(), Limit> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(Limit::Nodes(line));
        }
        Ok(())
    }

    /// Adds `n` nodes to the size of the enclosing collection.
    fn enclose(&mut self, n: usize) {
        if let Some(f) = self.stack.last_mut() {
            *f.size() = f.size().saturating_add(n);
        }
    }

    fn event(&mut self, ev: Event, mark: Mark) -> Result<(), Limit> {
        match ev {
            Event::Scalar(value, _, anchor, _) => {
                self.place(Some(&value), mark);
                if anchor != 0 {
                    self.anchored.insert(anchor, 1);
                }
                self.grow(1, mark.line)?;
                self.enclose(1);
            }
            Event::Alias(anchor) => {
                self.place(None, mark);
                let n = self.anchored.get(&anchor).copied().unwrap_or(1);
                self.grow(n, mark.line)?;
                self.enclose(n);
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(Limit::Depth(mark.line));
                }
                self.grow(1, mark.line)?;
                // A mapping key that is itself a collection has no path.
                let node = self.place(None, mark).unwrap_or(usize::MAX);
                let (size, key) = (1, None);
                self.stack.push(match ev {
                    Event::MappingStart(..) => Frame::Map {
                        node,
                        key,
                        anchor,
                        size,
                    },
                    _ => Frame::Seq {
                        node,
                        next: 0,
                        anchor,
                        size,
                    },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(Frame::Map { anchor, size, .. } | Frame::Seq { anchor, size, .. }) =
                    self.stack.pop()
                {
                    if anchor != 0 {
                        self.anchored.insert(anchor, size);
                    }
                    self.enclose(size);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Marks {
    /// Indexes `text`. A document that does not parse gives an empty index
    /// (serde reports the syntax error itself, with its position); one that
    /// nests too deep or expands to too many values is refused.
    pub fn index(text: &str) -> Result<Self, Limit> {
        let mut parser = Parser::new_from_str(text);
        let mut walker = Walker::default();
        loop {
            match parser.next_token() {
                Ok((Event::StreamEnd, _)) => return Ok(walker.marks),
                Ok((ev, marker)) => {
                    let mark = Mark {
                        line: marker.line(),
                        column: marker.col() + 1,
                    };
                    walker.event(ev, mark)?;
                }
                Err(_) => return Ok(Self::default()),
            }
        }
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
        let m = Marks::index(text).unwrap();
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
    fn alias_bombs_and_deep_nesting_are_refused_and_the_index_stays_linear() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        assert!(matches!(Marks::index(&bomb), Err(Limit::Nodes(_))));
        // A few aliases are fine.
        let ok = "d: &d { mode: \"0400\" }\nx: *d\ny: *d\n";
        assert!(Marks::index(ok).is_ok());
        let deep = format!("a: {}{}\n", "[".repeat(100), "]".repeat(100));
        assert_eq!(Marks::index(&deep).unwrap_err(), Limit::Depth(1));
        // Long keys over many items: each key is stored once.
        let long = "k".repeat(1000);
        let text = format!("{long}:\n{}", "  - x\n".repeat(10_000));
        let m = Marks::index(&text).unwrap();
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
    }
}
