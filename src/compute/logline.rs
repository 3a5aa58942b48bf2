//! Reassembling log lines from the engine's timestamped log messages. Pure.
//!
//! With timestamps on, the engine sends each log message as `<RFC 3339 ts> <text>`. A
//! line longer than its buffer (16 KiB for Docker) or one the program has not finished
//! (a progress bar redrawn with `\r`) arrives as several messages, each with its own
//! timestamp and only the last ending in `\n`. This joins them into lines, keeps the
//! first timestamp, flushes an unfinished line when the stream ends, and caps a line's
//! length so a program that never prints a newline cannot grow memory without bound.

use super::LogLine;

/// Longest line kept in one piece; longer ones are cut into lines of this size.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct LineAssembler {
    pending: Option<(String, Vec<u8>)>,
}

/// Splits a leading `<timestamp> ` off a message fragment.
fn split_ts(piece: &[u8]) -> Option<(&str, &[u8])> {
    let space = piece.iter().take(40).position(|b| *b == b' ')?;
    let ts = std::str::from_utf8(&piece[..space]).ok()?;
    let b = ts.as_bytes();
    let looks_like_ts = b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b'T'
        && ts.ends_with('Z');
    looks_like_ts.then(|| (ts, &piece[space + 1..]))
}

impl LineAssembler {
    /// Takes one engine message; returns the lines it completes.
    pub fn push(&mut self, message: &[u8]) -> Vec<LogLine> {
        let mut out = Vec::new();
        for piece in message.split_inclusive(|b| *b == b'\n') {
            let (ts, text) = match split_ts(piece) {
                Some((ts, text)) => (Some(ts), text),
                None => (None, piece),
            };
            let (first_ts, buf) = self.pending.get_or_insert_with(|| {
                (ts.map(super::normalize_ts).unwrap_or_default(), Vec::new())
            });
            if first_ts.is_empty()
                && let Some(ts) = ts
            {
                *first_ts = super::normalize_ts(ts);
            }
            buf.extend_from_slice(text);
            if buf.ends_with(b"\n") {
                buf.pop();
                out.extend(self.take());
            } else if buf.len() >= MAX_LINE {
                out.extend(self.take());
            }
        }
        out
    }

    /// The unfinished line, if any (call when the stream ends).
    pub fn finish(&mut self) -> Option<LogLine> {
        self.take()
    }

    fn take(&mut self) -> Option<LogLine> {
        let (ts, mut buf) = self.pending.take()?;
        if buf.ends_with(b"\r") {
            buf.pop();
        }
        Some(LogLine {
            ts,
            text: String::from_utf8_lossy(&buf).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2026-11-28T19:00:00.1Z";
    const T2: &str = "2026-11-28T19:00:00.2Z";

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn whole_lines_keep_their_timestamp() {
        let mut a = LineAssembler::default();
        let lines = a.push(format!("{T1} hello world\n").as_bytes());
        assert_eq!(texts(&lines), ["hello world"]);
        assert_eq!(lines[0].ts, "2026-11-28T19:00:00.100000000Z");
        assert!(a.finish().is_none());
    }

    #[test]
    fn partial_messages_join_without_embedded_timestamps() {
        let mut a = LineAssembler::default();
        assert!(a.push(format!("{T1} 10%\r").as_bytes()).is_empty());
        assert!(a.push(format!("{T2} 50%\r").as_bytes()).is_empty());
        let lines = a.push(format!("{T2} 100%\n").as_bytes());
        assert_eq!(texts(&lines), ["10%\r50%\r100%"]);
        assert_eq!(lines[0].ts, "2026-11-28T19:00:00.100000000Z");
    }

    #[test]
    fn unfinished_last_line_is_flushed() {
        let mut a = LineAssembler::default();
        assert!(
            a.push(format!("{T1} no newline at the end").as_bytes())
                .is_empty()
        );
        assert_eq!(a.finish().unwrap().text, "no newline at the end");
    }

    #[test]
    fn endless_line_is_cut() {
        let mut a = LineAssembler::default();
        let chunk = format!("{T1} {}", "x".repeat(16 * 1024));
        let mut lines = Vec::new();
        for _ in 0..5 {
            lines.extend(a.push(chunk.as_bytes()));
        }
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text.len(), MAX_LINE);
    }

    #[test]
    fn text_that_merely_starts_with_a_number_is_text() {
        let mut a = LineAssembler::default();
        let lines = a.push(format!("{T1} 2026 was a year\n").as_bytes());
        assert_eq!(texts(&lines), ["2026 was a year"]);
    }
}
