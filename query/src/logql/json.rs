//! A small JSON reader for the `json` stage: flattens an object's scalar
//! fields into `(key, value)` pairs, nested objects joined with `_`
//! (`{"a":{"b":1}}` gives `a_b=1`), arrays skipped, as Loki does. Nesting
//! is bounded.

const MAX_DEPTH: usize = 64;

/// The flattened pairs of a JSON object, or `None` if `s` is not one.
pub fn flatten(s: &str) -> Option<Vec<(String, String)>> {
    let mut p = P {
        b: s.as_bytes(),
        s,
        i: 0,
    };
    let mut out = Vec::new();
    p.ws();
    p.object("", 0, &mut out)?;
    p.ws();
    (p.i == p.b.len()).then_some(out)
}

struct P<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn object(
        &mut self,
        prefix: &str,
        depth: usize,
        out: &mut Vec<(String, String)>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.eat(b':')?;
            self.ws();
            let name = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}_{key}")
            };
            match self.b.get(self.i)? {
                b'{' => self.object(&name, depth + 1, out)?,
                b'[' => self.skip_array(depth + 1)?,
                b'"' => {
                    let v = self.string()?;
                    out.push((name, v));
                }
                _ => {
                    let v = self.scalar()?;
                    if v != "null" {
                        out.push((name, v.to_string()));
                    }
                }
            }
            self.ws();
            if self.eat(b',').is_some() {
                continue;
            }
            self.eat(b'}')?;
            return Some(());
        }
    }

    fn skip_array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'[')?;
        self.ws();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            match self.b.get(self.i)? {
                b'{' => {
                    let mut sink = Vec::new();
                    self.object("", depth + 1, &mut sink)?;
                }
                b'[' => self.skip_array(depth + 1)?,
                b'"' => {
                    self.string()?;
                }
                _ => {
                    self.scalar()?;
                }
            }
            self.ws();
            if self.eat(b',').is_some() {
                continue;
            }
            self.eat(b']')?;
            return Some(());
        }
    }

    fn scalar(&mut self) -> Option<&str> {
        let start = self.i;
        while self.i < self.b.len()
            && (self.b[self.i].is_ascii_alphanumeric()
                || matches!(self.b[self.i], b'.' | b'-' | b'+'))
        {
            self.i += 1;
        }
        let v = &self.s[start..self.i];
        let ok = matches!(v, "true" | "false" | "null") || v.parse::<f64>().is_ok();
        ok.then_some(v)
    }

    fn string(&mut self) -> Option<String> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let mut out = String::new();
        let mut run = self.i;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'"' => {
                    out.push_str(&self.s[run..self.i]);
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    out.push_str(&self.s[run..self.i]);
                    let c = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    match c {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4)?;
                            let cp = u32::from_str_radix(hex, 16).ok()?;
                            out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                            self.i += 4;
                        }
                        other => out.push(other as char),
                    }
                    run = self.i;
                }
                _ => self.i += 1,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens() {
        let got = flatten(r#" {"a":"x\"y","n":1.5,"b":true,"z":null,"o":{"p":{"q":"r"}},"arr":[1,{"k":2}],"e":{}} "#)
            .unwrap();
        assert_eq!(
            got,
            vec![
                ("a".into(), "x\"y".into()),
                ("n".into(), "1.5".into()),
                ("b".into(), "true".into()),
                ("o_p_q".into(), "r".into()),
            ]
        );
        assert!(flatten("[1]").is_none());
        assert!(flatten(r#"{"a":}"#).is_none());
        assert!(flatten(r#"{"a":1} x"#).is_none());
        let deep = format!("{}{}", "{\"a\":".repeat(100), "}".repeat(100));
        assert!(flatten(&deep).is_none());
    }
}
