//! Showing text that came from outside (a peer, a sensor, a config file)
//! on one line of a terminal or a log.
//!
//! Structured log fields are escaped by `tracing` when recorded with `?`
//! (Debug); this is for the places that print a sentence: the CLI's
//! output and error lines, config errors.

use std::borrow::Cow;

/// `text` with its control characters (a newline, a carriage return, an
/// escape sequence) escaped as `\n`, `\r`, `\u{1b}`, so it cannot start a
/// line of its own or repaint the screen; everything else, accents and
/// emoji included, is kept as is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        assert_eq!(printable("mesa ñ ✓ 🍽"), "mesa ñ ✓ 🍽");
        assert_eq!(
            printable("a\nINFO forged\r\u{1b}[2J\t"),
            r"a\nINFO forged\r\u{1b}[2J\t"
        );
    }
}
