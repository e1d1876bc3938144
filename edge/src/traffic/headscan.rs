//! Where a document's `<head>` start tag ends: a resumable byte scanner that follows the HTML
//! tokenizer (WHATWG HTML §13.2.5) through the only tokens the tree builder allows before a
//! head element ("initial", "before html" and "before head" insertion modes, §13.2.6.4.1–3):
//! whitespace, comments, a DOCTYPE (or other bogus comment) and the `<html>` start tag.
//!
//! The bootstrap needs nothing else from the document, so this replaces a general streaming
//! rewriter (lol_html and its encoding tables, ~80 KB of the edge's gzip). Anything else
//! before `<head>` — text, another element, an end tag — means the parser has already
//! implied the head element (a later `<head>` tag would be ignored), so the scanner gives up
//! and the page passes through unchanged. Bytes are compared as ASCII, which is right for
//! UTF-8 and every ASCII-compatible legacy encoding; a UTF-16 page never matches and passes
//! through.

/// What the scanner learnt from one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Keep feeding bytes.
    More,
    /// The byte just fed ends the `<head …>` start tag: insert right after it.
    HeadEnds,
    /// The document does not open with a head element the bootstrap can use.
    GiveUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between tokens; `bom` counts the bytes of a leading UTF-8 byte-order mark seen so far.
    Data {
        bom: u8,
        at_start: bool,
    },
    TagOpen,
    /// A start tag's name so far: up to four lowercase letters (`html`, `head`), or `None`
    /// once it cannot be either.
    TagName {
        name: [u8; 4],
        len: u8,
        other: bool,
    },
    BeforeAttrName,
    AttrName,
    AfterAttrName,
    BeforeAttrValue,
    ValueDouble,
    ValueSingle,
    ValueUnquoted,
    AfterValueQuoted,
    SelfClosing,
    /// `<!`, `<!-`: a comment if `--` follows, else a bogus comment (a DOCTYPE is one here:
    /// it ends at the first `>` even inside a quoted identifier, §13.2.5.60ff.).
    Bang,
    BangDash,
    Bogus,
    CommentStart,
    CommentStartDash,
    Comment,
    CommentEndDash,
    CommentEnd,
    CommentEndBang,
}

/// Which tag a start tag turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Html,
    Head,
}

/// The resumable scanner: feed bytes in order with [`HeadScan::feed`].
#[derive(Debug, Clone)]
pub(crate) struct HeadScan {
    state: State,
    tag: Option<Tag>,
}

impl Default for HeadScan {
    fn default() -> Self {
        Self {
            state: State::Data {
                bom: 0,
                at_start: true,
            },
            tag: None,
        }
    }
}

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

fn space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0C | b'\r' | b' ')
}

impl HeadScan {
    /// Feeds one byte. After [`Step::HeadEnds`] or [`Step::GiveUp`] the scanner is done and
    /// must not be fed again (it would keep answering `GiveUp`).
    pub(crate) fn feed(&mut self, b: u8) -> Step {
        use State::*;
        self.state = match self.state {
            Data { bom, at_start } => {
                if at_start && usize::from(bom) < BOM.len() && b == BOM[usize::from(bom)] {
                    Data {
                        bom: bom + 1,
                        at_start: bom + 1 < 3,
                    }
                } else if at_start && bom > 0 {
                    // A broken byte-order mark is text.
                    return self.give_up();
                } else if space(b) {
                    Data {
                        bom: 3,
                        at_start: false,
                    }
                } else if b == b'<' {
                    TagOpen
                } else {
                    return self.give_up();
                }
            }
            TagOpen => match b {
                b'!' => Bang,
                b'?' => Bogus,
                b if b.is_ascii_alphabetic() => TagName {
                    name: [b.to_ascii_lowercase(), 0, 0, 0],
                    len: 1,
                    other: false,
                },
                // An end tag, or a `<` that is text.
                _ => return self.give_up(),
            },
            TagName { name, len, other } => {
                if space(b) || b == b'/' || b == b'>' {
                    self.tag = match (&name, len, other) {
                        (b"html", 4, false) => Some(Tag::Html),
                        (b"head", 4, false) => Some(Tag::Head),
                        _ => return self.give_up(),
                    };
                    return self.after_attribute_name_like(b, BeforeAttrName);
                }
                let mut name = name;
                let fits = usize::from(len) < name.len();
                if fits {
                    name[usize::from(len)] = b.to_ascii_lowercase();
                }
                TagName {
                    name,
                    len: len.saturating_add(1),
                    other: other || !fits,
                }
            }
            BeforeAttrName => match b {
                b if space(b) => BeforeAttrName,
                b'/' => SelfClosing,
                b'>' => return self.tag_ends(),
                // `=` here starts an attribute *name* (a parse error, §13.2.5.32).
                _ => AttrName,
            },
            AttrName => match b {
                b if space(b) => AfterAttrName,
                b'/' => SelfClosing,
                b'=' => BeforeAttrValue,
                b'>' => return self.tag_ends(),
                _ => AttrName,
            },
            AfterAttrName => match b {
                b if space(b) => AfterAttrName,
                b'/' => SelfClosing,
                b'=' => BeforeAttrValue,
                b'>' => return self.tag_ends(),
                _ => AttrName,
            },
            BeforeAttrValue => match b {
                b if space(b) => BeforeAttrValue,
                b'"' => ValueDouble,
                b'\'' => ValueSingle,
                b'>' => return self.tag_ends(),
                _ => ValueUnquoted,
            },
            ValueDouble => match b {
                b'"' => AfterValueQuoted,
                _ => ValueDouble,
            },
            ValueSingle => match b {
                b'\'' => AfterValueQuoted,
                _ => ValueSingle,
            },
            ValueUnquoted => match b {
                b if space(b) => BeforeAttrName,
                b'>' => return self.tag_ends(),
                _ => ValueUnquoted,
            },
            AfterValueQuoted => match b {
                b if space(b) => BeforeAttrName,
                b'/' => SelfClosing,
                b'>' => return self.tag_ends(),
                // Missing whitespace between attributes: the byte starts the next name.
                _ => AttrName,
            },
            SelfClosing => match b {
                b'>' => return self.tag_ends(),
                // Reconsumed in "before attribute name".
                b if space(b) => BeforeAttrName,
                b'/' => SelfClosing,
                _ => AttrName,
            },
            Bang => match b {
                b'-' => BangDash,
                b'>' => self.data(),
                _ => Bogus,
            },
            BangDash => match b {
                b'-' => CommentStart,
                b'>' => self.data(),
                _ => Bogus,
            },
            Bogus => match b {
                b'>' => self.data(),
                _ => Bogus,
            },
            CommentStart => match b {
                b'-' => CommentStartDash,
                // `<!-->`: an abruptly closed empty comment.
                b'>' => self.data(),
                _ => Comment,
            },
            CommentStartDash => match b {
                b'-' => CommentEnd,
                b'>' => self.data(),
                _ => Comment,
            },
            Comment => match b {
                b'-' => CommentEndDash,
                _ => Comment,
            },
            CommentEndDash => match b {
                b'-' => CommentEnd,
                _ => Comment,
            },
            CommentEnd => match b {
                b'>' => self.data(),
                b'!' => CommentEndBang,
                b'-' => CommentEnd,
                _ => Comment,
            },
            CommentEndBang => match b {
                b'-' => CommentEndDash,
                // `--!>` closes a comment too.
                b'>' => self.data(),
                _ => Comment,
            },
        };
        Step::More
    }

    fn data(&self) -> State {
        State::Data {
            bom: 3,
            at_start: false,
        }
    }

    /// The byte that ended a tag name, handled as "before attribute name" would.
    fn after_attribute_name_like(&mut self, b: u8, next: State) -> Step {
        match b {
            b'>' => self.tag_ends(),
            b'/' => {
                self.state = State::SelfClosing;
                Step::More
            }
            _ => {
                self.state = next;
                Step::More
            }
        }
    }

    fn tag_ends(&mut self) -> Step {
        match self.tag.take() {
            Some(Tag::Head) => {
                self.state = self.data();
                Step::HeadEnds
            }
            Some(Tag::Html) => {
                self.state = self.data();
                Step::More
            }
            None => self.give_up(),
        }
    }

    fn give_up(&mut self) -> Step {
        // Stay in a state that keeps refusing: `<` then a non-tag byte.
        self.state = State::TagOpen;
        Step::GiveUp
    }
}

/// The offset just past the `<head …>` start tag of `doc`, if the document opens with one
/// the bootstrap can use (tests and whole-body callers).
#[cfg(test)]
pub(crate) fn head_end(doc: &[u8]) -> Option<usize> {
    let mut scan = HeadScan::default();
    for (i, &b) in doc.iter().enumerate() {
        match scan.feed(b) {
            Step::More => {}
            Step::HeadEnds => return Some(i + 1),
            Step::GiveUp => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tokens_allowed_before_head_are_skipped() {
        // (document, the part up to and including the head start tag)
        let cases: &[(&str, &str)] = &[
            ("<head>", "<head>"),
            ("<HEAD>x", "<HEAD>"),
            (
                "<!doctype html><html lang=\"en\"><head><meta>",
                "<!doctype html><html lang=\"en\"><head>",
            ),
            ("\u{feff}<head>", "\u{feff}<head>"),
            (" \n\t\r\x0c<head>", " \n\t\r\x0c<head>"),
            ("<!-- <head> --><head>", "<!-- <head> --><head>"),
            ("<!--><head>", "<!--><head>"),
            ("<!---><head>", "<!---><head>"),
            ("<!-- a --!><head>", "<!-- a --!><head>"),
            ("<!-- a ---><head>", "<!-- a ---><head>"),
            ("<!><head>", "<!><head>"),
            ("<!-x><head>", "<!-x><head>"),
            (
                "<?xml version=\"1.0\"?><head>",
                "<?xml version=\"1.0\"?><head>",
            ),
            (
                "<html data-x=\"a>b\" data-y='c>d' e=f><head>",
                "<html data-x=\"a>b\" data-y='c>d' e=f><head>",
            ),
            ("<head data-x=\"a>b\">", "<head data-x=\"a>b\">"),
            ("<head\n  class=x>", "<head\n  class=x>"),
            ("<head/>", "<head/>"),
            ("<head a=\"1\"b=2>", "<head a=\"1\"b=2>"),
        ];
        for (doc, until) in cases {
            assert_eq!(head_end(doc.as_bytes()), Some(until.len()), "{doc:?}");
        }
    }

    #[test]
    fn anything_else_before_head_gives_up() {
        for doc in [
            "",
            "text<head>",
            "<p><head>",
            "<meta charset=utf-8><head>",
            "</html><head>",
            "< head>",
            "<headx>",
            "<hea>",
            "<htmlx><head>",
            "\u{feff}\u{feff}<head>",
            "<!-- never closed <head>",
            "<html",
            // A DOCTYPE ends at the first `>`, even inside a quoted identifier: `b"` is text.
            "<!DOCTYPE html PUBLIC \"a>b\"><head>",
            // `=` before a name starts the name, and a quote inside a name quotes nothing.
            "<html =\"x>\"><head>",
            "<html a\"b>c\"><head>",
        ] {
            assert_eq!(head_end(doc.as_bytes()), None, "{doc:?}");
        }
        // UTF-16 never matches.
        let utf16: Vec<u8> = "<head>".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(head_end(&[&[0xFF, 0xFE][..], &utf16].concat()), None);
    }
}
