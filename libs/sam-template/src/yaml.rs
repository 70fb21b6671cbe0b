//! A YAML document as a small tree that keeps CloudFormation's short-form tags
//! (`!Ref`, `!Sub`, `!If`, ...), which generic YAML-to-JSON loaders drop or reject.
//!
//! Parsing is done by `saphyr-parser` (a YAML 1.2 parser); this module only builds the
//! tree from its events.

use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// One YAML node. Mapping keys are kept in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar {
        value: String,
        /// `Ref` for `!Ref x`; `None` for an untagged scalar.
        tag: Option<String>,
        /// Plain (unquoted) scalars can be numbers, booleans or null.
        plain: bool,
    },
    Seq {
        items: Vec<Node>,
        tag: Option<String>,
    },
    Map {
        entries: Vec<(String, Node)>,
        tag: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    #[error("YAML syntax error: {0}")]
    Syntax(String),
    #[error("YAML feature not supported here: {0}")]
    Unsupported(&'static str),
    #[error("the YAML document is empty")]
    Empty,
}

impl Node {
    /// The local tag name (`Ref` for `!Ref`), if any.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Node::Scalar { tag, .. } | Node::Seq { tag, .. } | Node::Map { tag, .. } => {
                tag.as_deref()
            }
        }
    }

    /// The value of an untagged scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar {
                value, tag: None, ..
            } => Some(value),
            _ => None,
        }
    }

    /// The entry `key` of an untagged mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map { entries, tag: None } => {
                entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Entries of an untagged mapping (empty for anything else).
    pub fn entries(&self) -> &[(String, Node)] {
        match self {
            Node::Map { entries, tag: None } => entries,
            _ => &[],
        }
    }

    /// Items of an untagged sequence (empty for anything else).
    pub fn items(&self) -> &[Node] {
        match self {
            Node::Seq { items, tag: None } => items,
            _ => &[],
        }
    }

    pub fn scalar(value: &str) -> Node {
        Node::Scalar {
            value: value.to_owned(),
            tag: None,
            plain: false,
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = self.tag() {
            write!(f, "!{t} ")?;
        }
        match self {
            Node::Scalar { value, .. } => write!(f, "{value:?}"),
            Node::Seq { items, .. } => {
                write!(f, "[")?;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{it}")?;
                }
                write!(f, "]")
            }
            Node::Map { entries, .. } => {
                write!(f, "{{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

/// Parses the first document of `text`.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    enum Frame {
        Seq(Vec<Node>, Option<String>),
        Map(Vec<(String, Node)>, Option<String>, Option<String>),
    }
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let local_tag = |t: Option<std::borrow::Cow<'_, saphyr_parser::Tag>>| -> Option<String> {
        t.and_then(|t| {
            // `!Ref` has handle "!" and suffix "Ref"; core schema tags (`!!str`) carry
            // no CloudFormation meaning.
            (t.handle == "!").then(|| t.suffix.clone())
        })
    };
    while let Some(ev) = parser.next_event() {
        let (ev, _span) = ev.map_err(|e| YamlError::Syntax(e.to_string()))?;
        let node = match ev {
            Event::StreamStart | Event::DocumentStart(_) | Event::Nothing => continue,
            Event::DocumentEnd | Event::StreamEnd => break,
            Event::Alias(_) => return Err(YamlError::Unsupported("aliases (*name)")),
            Event::SequenceStart(_, tag) => {
                stack.push(Frame::Seq(Vec::new(), local_tag(tag)));
                continue;
            }
            Event::MappingStart(_, tag) => {
                stack.push(Frame::Map(Vec::new(), local_tag(tag), None));
                continue;
            }
            Event::Scalar(value, style, _, tag) => Node::Scalar {
                value: value.into_owned(),
                tag: local_tag(tag),
                plain: style == ScalarStyle::Plain,
            },
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, tag)) => Node::Seq { items, tag },
                _ => return Err(YamlError::Syntax("unbalanced sequence".into())),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(entries, tag, None)) => Node::Map { entries, tag },
                _ => return Err(YamlError::Syntax("unbalanced mapping".into())),
            },
        };
        match stack.last_mut() {
            None => {
                root = Some(node);
            }
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map(entries, _, pending)) => match pending.take() {
                None => match node {
                    Node::Scalar { value, .. } => *pending = Some(value),
                    _ => return Err(YamlError::Unsupported("non-scalar mapping keys")),
                },
                Some(key) => entries.push((key, node)),
            },
        }
    }
    root.ok_or(YamlError::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_cloudformation_tags_and_order() {
        let doc = parse(
            "A:\n  B: !Ref X\n  C: !Sub\n    - 'x${Y}'\n    - Y: !If [c, 1, 2]\n  D: [a, {k: v}]\n  E: >-\n    folded\n    text\n",
        )
        .unwrap();
        let a = doc.get("A").unwrap();
        assert_eq!(a.entries().len(), 4);
        assert_eq!(a.get("B").unwrap().tag(), Some("Ref"));
        let c = a.get("C").unwrap();
        assert_eq!(c.tag(), Some("Sub"));
        let Node::Seq { items, .. } = c else { panic!() };
        assert_eq!(items[0].as_str(), Some("x${Y}"));
        assert_eq!(items[1].get("Y").unwrap().tag(), Some("If"));
        assert_eq!(
            a.get("D").unwrap().items()[1].get("k").unwrap().as_str(),
            Some("v")
        );
        assert_eq!(a.get("E").unwrap().as_str(), Some("folded text"));
    }

    #[test]
    fn errors_are_reported() {
        assert!(matches!(parse("a: [b"), Err(YamlError::Syntax(_))));
        assert!(matches!(
            parse("a: &x 1\nb: *x\n"),
            Err(YamlError::Unsupported(_))
        ));
        assert_eq!(parse(""), Err(YamlError::Empty));
    }
}
