//! Splits a watch stream into lines, never holding more than one line of
//! at most `max` bytes: a longer line is dropped whole and reported.

/// One item of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete, non-blank line (without its newline).
    Complete(Vec<u8>),
    /// A line longer than the limit was skipped.
    Oversized,
}

/// An incremental line splitter with a per-line size cap.
#[derive(Debug)]
pub struct LineReader {
    buf: Vec<u8>,
    max: usize,
    skipping: bool,
}

impl LineReader {
    /// A reader whose lines may be at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    /// Feeds `chunk`; returns the lines it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while !rest.is_empty() {
            let Some(i) = rest.iter().position(|b| *b == b'\n') else {
                if !self.skipping {
                    if self.buf.len() + rest.len() > self.max {
                        self.buf = Vec::new();
                        self.skipping = true;
                    } else {
                        self.buf.extend_from_slice(rest);
                    }
                }
                break;
            };
            let part = &rest[..i];
            rest = &rest[i + 1..];
            if self.skipping {
                self.skipping = false;
                out.push(Line::Oversized);
            } else if self.buf.len() + part.len() > self.max {
                self.buf = Vec::new();
                out.push(Line::Oversized);
            } else {
                self.buf.extend_from_slice(part);
                let line = std::mem::take(&mut self.buf);
                if !line.iter().all(u8::is_ascii_whitespace) {
                    out.push(Line::Complete(line));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_across_chunks_and_caps_lines() {
        let mut r = LineReader::new(5);
        assert_eq!(r.push(b"ab"), vec![]);
        assert_eq!(
            r.push(b"c\n\nde\n"),
            vec![
                Line::Complete(b"abc".to_vec()),
                Line::Complete(b"de".to_vec())
            ]
        );
        assert_eq!(r.push(b"toolong"), vec![]);
        assert_eq!(r.push(b"stilllong"), vec![]);
        assert_eq!(
            r.push(b"end\nok\n"),
            vec![Line::Oversized, Line::Complete(b"ok".to_vec())]
        );
        assert_eq!(
            r.push(b"123456\n12345\n"),
            vec![Line::Oversized, Line::Complete(b"12345".to_vec())]
        );
    }
}
