//! Where a node of a YAML document is: a path (`timeline[2].scale`) to its
//! line and column, so that errors found after deserialization (an unknown
//! Deployment name, a window that ends before it starts) still point at the
//! place to fix. Built from saphyr-parser's event stream, which carries a
//! position for every event; serde's deserializers do not keep positions.

use saphyr_parser::{Event, Parser};
use std::collections::HashMap;

/// One step of a path into a document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Positions of every node of the first document: path -> (line, column),
/// both 1-based. For a mapping entry, the position is that of its key.
#[derive(Debug, Default)]
pub struct Positions {
    map: HashMap<Vec<Seg>, (usize, usize)>,
}

enum Frame {
    Map { key: Option<String> },
    Seq { next: usize },
}

impl Positions {
    /// Indexes `text`'s first document; a document the parser rejects gives
    /// an empty index (serde reports the syntax error itself).
    pub fn of(text: &str) -> Positions {
        Positions::of_document(text, 0)
    }

    /// Indexes the `n`th document (0-based) of a multi-document `text`.
    pub fn of_document(text: &str, n: usize) -> Positions {
        let mut map = HashMap::new();
        let mut path: Vec<Seg> = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut doc = 0;
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let pos = (span.start.line(), span.start.col() + 1);
            if let Event::DocumentEnd = event {
                if doc == n {
                    break;
                }
                doc += 1;
                continue;
            }
            if doc != n {
                continue;
            }
            match event {
                Event::Scalar(..)
                | Event::Alias(_)
                | Event::MappingStart(..)
                | Event::SequenceStart(..) => {
                    let is_key = matches!(stack.last(), Some(Frame::Map { key: None }));
                    if is_key {
                        if let (Event::Scalar(k, ..), Some(Frame::Map { key })) =
                            (&event, stack.last_mut())
                        {
                            let mut p = path.clone();
                            p.push(Seg::Key(k.to_string()));
                            map.insert(p, pos);
                            *key = Some(k.to_string());
                        }
                        continue;
                    }
                    // A value: its path is the current path plus the key or index.
                    match stack.last_mut() {
                        Some(Frame::Map { key }) => {
                            path.push(Seg::Key(key.take().unwrap_or_default()))
                        }
                        Some(Frame::Seq { next }) => {
                            path.push(Seg::Index(*next));
                            *next += 1;
                        }
                        None => {}
                    }
                    map.entry(path.clone()).or_insert(pos);
                    match event {
                        Event::MappingStart(..) => stack.push(Frame::Map { key: None }),
                        Event::SequenceStart(..) => stack.push(Frame::Seq { next: 0 }),
                        _ => {
                            path.pop();
                        }
                    }
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    path.pop();
                }
                _ => {}
            }
        }
        Positions { map }
    }

    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &[Seg]) -> (usize, usize) {
        (0..=path.len())
            .rev()
            .find_map(|n| self.map.get(&path[..n]).copied())
            .unwrap_or((1, 1))
    }
}

/// Builds a path from `"timeline"`, `2`, `"scale"`-like parts.
#[macro_export]
macro_rules! path {
    ($($seg:expr),* $(,)?) => { [$($crate::locate::Seg::from($seg)),*] };
}

impl From<&str> for Seg {
    fn from(s: &str) -> Seg {
        Seg::Key(s.to_string())
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Seg {
        Seg::Index(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_items() {
        let text =
            "name: x\ntimeline:\n  - at: 10m\n    scale: checkout\n  - at: 1h\n    rate: 5/s\n";
        let p = Positions::of(text);
        assert_eq!(p.find(&path!["name"]), (1, 1));
        assert_eq!(p.find(&path!["timeline", 0usize, "scale"]), (4, 5));
        assert_eq!(p.find(&path!["timeline", 1usize]), (5, 5));
        assert_eq!(p.find(&path!["timeline", 1usize, "rate"]), (6, 5));
        assert_eq!(
            p.find(&path!["timeline", 1usize, "missing"]),
            (5, 5),
            "falls back to the parent"
        );
    }

    #[test]
    fn finds_keys_in_a_later_document() {
        let text = "kind: A\nspec: {x: 1}\n---\nkind: B\nspec:\n  rules:\n    - host: h\n";
        let p = Positions::of_document(text, 1);
        assert_eq!(p.find(&path!["kind"]), (4, 1));
        assert_eq!(p.find(&path!["spec", "rules", 0usize, "host"]), (7, 7));
        assert_eq!(
            Positions::of_document(text, 0).find(&path!["spec", "x"]),
            (2, 8)
        );
    }
}
