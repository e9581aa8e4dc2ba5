//! A small SVG text writer: the timeline picture is plain XML, written by hand rather
//! than through a drawing library, so the report adds no dependency.
//!
//! Writing XML by hand is safe only if every piece of text that did not come from this
//! code is escaped, and only if every number is a finite one. So text goes through
//! [`escape`] (the five XML special characters become entities; control characters,
//! which XML 1.0 forbids, become U+FFFD; line breaks become spaces, since every label is
//! one line) and through [`shorten`] (labels are bounded in length), and coordinates go
//! through [`number`], which asserts they are finite and prints one decimal — a tenth of
//! a pixel is finer than any screen, and shorter numbers keep a 50,000-point picture
//! small. Attribute strings passed to [`Svg`]'s methods are this module's callers' own
//! constants and numbers; anything from outside in them must be escaped by the caller.

use std::fmt::Write;

/// Escapes `text` for XML character data and attribute values.
#[must_use]
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(' '),
            // XML 1.0 forbids C0 controls and the two non-characters; C1 controls are
            // allowed but never meant in a label.
            control if control.is_control() || control == '\u{FFFE}' || control == '\u{FFFF}' => {
                escaped.push('\u{FFFD}');
            }
            other => escaped.push(other),
        }
    }
    escaped
}

/// `text` cut to at most `characters_max` characters, ending in "…" when it was cut.
#[must_use]
pub(super) fn shorten(text: &str, characters_max: usize) -> String {
    assert!(characters_max >= 1);
    if text.chars().count() <= characters_max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(characters_max - 1).collect();
    short.push('…');
    short
}

/// A coordinate or length with one decimal.
#[must_use]
pub(super) fn number(value: f64) -> String {
    assert!(value.is_finite(), "an SVG number must be finite: {value}");
    let text = format!("{value:.1}");
    match text.strip_suffix(".0") {
        Some(whole) if whole != "-0" => whole.to_string(),
        Some(_) => "0".to_string(),
        None => text,
    }
}

/// An SVG document being written.
#[derive(Debug)]
pub(super) struct Svg {
    text: String,
    open_groups: usize,
}

impl Svg {
    /// Starts a document of `width` × `height` pixels on a white background.
    #[must_use]
    pub(super) fn new(width: f64, height: f64) -> Svg {
        let (width, height) = (number(width), number(height));
        let mut text = String::with_capacity(64 * 1024);
        text.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            text,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{width}\" \
             height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
             font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\" fill=\"#222\">"
        );
        let _ = writeln!(
            text,
            "<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>"
        );
        Svg {
            text,
            open_groups: 0,
        }
    }

    /// Appends markup this module's callers built themselves.
    pub(super) fn raw(&mut self, markup: &str) {
        self.text.push_str(markup);
    }

    /// A rectangle with extra attributes.
    pub(super) fn rect(&mut self, x: f64, y: f64, width: f64, height: f64, attributes: &str) {
        let _ = writeln!(
            self.text,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" {attributes}/>",
            number(x),
            number(y),
            number(width.max(0.0)),
            number(height.max(0.0)),
        );
    }

    /// A line segment with extra attributes.
    pub(super) fn line(&mut self, from: (f64, f64), to: (f64, f64), attributes: &str) {
        let _ = writeln!(
            self.text,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" {attributes}/>",
            number(from.0),
            number(from.1),
            number(to.0),
            number(to.1),
        );
    }

    /// A text label; `content` is escaped here.
    pub(super) fn text(&mut self, x: f64, y: f64, attributes: &str, content: &str) {
        let _ = writeln!(
            self.text,
            "<text x=\"{}\" y=\"{}\" {attributes}>{}</text>",
            number(x),
            number(y),
            escape(content),
        );
    }

    /// Opens a group; every group must be closed before [`Self::finish`].
    pub(super) fn open_group(&mut self, attributes: &str) {
        let _ = writeln!(self.text, "<g {attributes}>");
        self.open_groups += 1;
    }

    /// Closes the innermost open group.
    pub(super) fn close_group(&mut self) {
        assert!(self.open_groups > 0, "no group to close");
        self.text.push_str("</g>\n");
        self.open_groups -= 1;
    }

    /// The finished document.
    #[must_use]
    pub(super) fn finish(mut self) -> String {
        assert_eq!(self.open_groups, 0, "a group was left open");
        self.text.push_str("</svg>\n");
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_special_characters_and_controls() {
        assert_eq!(
            escape("a<b>&\"c'\u{0}\n\u{FFFF}é"),
            "a&lt;b&gt;&amp;&quot;c&apos;\u{FFFD} \u{FFFD}é"
        );
    }

    #[test]
    fn shortens_by_characters_not_bytes() {
        assert_eq!(shorten("ééééé", 5), "ééééé");
        assert_eq!(shorten("éééééé", 5), "éééé…");
    }

    #[test]
    fn numbers_have_at_most_one_decimal() {
        assert_eq!(number(12.0), "12");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(-0.01), "0");
        assert_eq!(number(-3.06), "-3.1");
    }

    #[test]
    #[should_panic(expected = "finite")]
    fn refuses_to_write_a_non_finite_number() {
        let _ = number(f64::NAN);
    }
}
