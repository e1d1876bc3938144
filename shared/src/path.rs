//! JSON paths for diagnostics (`flags.new-checkout.targeting.fractional[1]`).
//!
//! The path is kept as a stack of segments while the loader walks the document, and only
//! rendered to a string when a diagnostic is emitted, so a clean document costs nothing.

use std::fmt::{self, Write};

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A path into the flag-set document.
#[derive(Debug, Clone, Default)]
pub(crate) struct JsonPath {
    segs: Vec<Seg>,
}

impl JsonPath {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push_key(&mut self, key: &str) {
        self.segs.push(Seg::Key(key.to_owned()));
    }

    pub(crate) fn push_index(&mut self, index: usize) {
        self.segs.push(Seg::Index(index));
    }

    pub(crate) fn pop(&mut self) {
        self.segs.pop();
    }

    /// Runs `f` with `key` appended, then removes it again.
    pub(crate) fn with_key<R>(&mut self, key: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.push_key(key);
        let r = f(self);
        self.pop();
        r
    }

    /// Runs `f` with `[index]` appended, then removes it again.
    pub(crate) fn with_index<R>(&mut self, index: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        self.push_index(index);
        let r = f(self);
        self.pop();
        r
    }
}

/// Keys that would make a dotted path ambiguous are written as `["…"]`.
fn needs_quoting(key: &str) -> bool {
    key.is_empty() || key.contains(['.', '[', ']', '"', ' '])
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segs.is_empty() {
            return f.write_char('$');
        }
        for (i, seg) in self.segs.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) if needs_quoting(k) => write!(f, "[{k:?}]")?,
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_char('.')?;
                    }
                    f.write_str(k)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_keys_dotted_and_indexes_bracketed() {
        let mut p = JsonPath::new();
        assert_eq!(p.to_string(), "$");
        p.push_key("flags");
        p.push_key("new-checkout");
        p.push_key("targeting");
        p.push_key("fractional");
        p.push_index(1);
        assert_eq!(p.to_string(), "flags.new-checkout.targeting.fractional[1]");
    }

    #[test]
    fn quotes_keys_that_contain_separators() {
        let mut p = JsonPath::new();
        p.push_key("flags");
        p.push_key("a.b");
        assert_eq!(p.to_string(), r#"flags["a.b"]"#);
    }
}
