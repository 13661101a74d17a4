//! Parsing Go `text/template` source into a tree: text, actions with
//! pipelines, `if`/`else if`/`else`, `range`, `with`, comments and the
//! `{{-`/`-}}` whitespace trimming.

/// An operand of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `.` or `.a.b`: fields of dot.
    Field(Vec<String>),
    /// `$x` or `$x.a.b` (`$` alone is the root data).
    Var(String, Vec<String>),
    /// A string literal.
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `nil`.
    Nil,
    /// A function name.
    Func(String),
    /// `( pipeline )` with optional fields after it.
    Sub(Box<Pipeline>, Vec<String>),
}

/// A command: a function call or a single operand.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The operands; a function call when the first is [`Operand::Func`].
    pub args: Vec<Operand>,
}

/// A pipeline: optional variable declaration, commands joined by `|`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Variables declared (`$x :=`) or assigned (`$x =`).
    pub decl: Vec<String>,
    /// True for `=` (assignment to an existing variable).
    pub assign: bool,
    /// The commands.
    pub cmds: Vec<Command>,
}

/// A node of the template tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Literal text.
    Text(String),
    /// `{{ pipeline }}`: prints its value unless it declares a variable.
    Action(Pipeline),
    /// `{{ if }}` .. `{{ else }}` .. `{{ end }}`.
    If(Pipeline, Vec<Node>, Vec<Node>),
    /// `{{ range }}` .. `{{ else }}` .. `{{ end }}`.
    Range(Pipeline, Vec<Node>, Vec<Node>),
    /// `{{ with }}` .. `{{ else }}` .. `{{ end }}`.
    With(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
    Str(String),
    Num(String),
    Ident(String),
    Var(String, Vec<String>),
    Field(Vec<String>),
    /// Fields following a `)`.
    Fields(Vec<String>),
}

enum Item {
    Text(String),
    Action(Vec<Tok>),
}

/// Splits the source into text and tokenized actions, applying trim markers.
fn lex(src: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    loop {
        let Some(start) = rest.find("{{") else {
            let text = if trim_next { rest.trim_start() } else { rest };
            if !text.is_empty() {
                items.push(Item::Text(text.to_string()));
            }
            break;
        };
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner = &rest[start + 2..];
        if inner.starts_with("- ") || inner.starts_with("-\t") || inner.starts_with("-\n") {
            text = text.trim_end();
            inner = &inner[1..];
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let (toks, after, trim) = lex_action(inner)?;
        trim_next = trim;
        if let Some(toks) = toks {
            items.push(Item::Action(toks));
        }
        rest = after;
    }
    Ok(items)
}

/// Tokenizes one action; returns its tokens (None for a comment), the
/// text after `}}` and whether the action ends with `-}}`.
fn lex_action(s: &str) -> Result<(Option<Vec<Tok>>, &str, bool), String> {
    let t = s.trim_start();
    if let Some(c) = t.strip_prefix("/*") {
        let end = c.find("*/").ok_or("unclosed comment")?;
        let after = c[end + 2..].trim_start();
        if let Some(a) = after.strip_prefix("-}}") {
            return Ok((None, a, true));
        }
        let a = after.strip_prefix("}}").ok_or("comment ends without }}")?;
        return Ok((None, a, false));
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut toks = Vec::new();
    let fields = |i: &mut usize| -> Vec<String> {
        let mut out = Vec::new();
        while *i < b.len() && b[*i] == b'.' {
            let st = *i + 1;
            let mut j = st;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j == st {
                break;
            }
            out.push(s[st..j].to_string());
            *i = j;
        }
        out
    };
    loop {
        if i >= b.len() {
            return Err("unclosed action".into());
        }
        let c = b[i];
        if c == b'-' && s[i..].starts_with("-}}") && i > 0 && b[i - 1].is_ascii_whitespace() {
            return Ok((Some(toks), &s[i + 3..], true));
        }
        if s[i..].starts_with("}}") {
            return Ok((Some(toks), &s[i + 2..], false));
        }
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                i += 1;
                let f = fields(&mut i);
                toks.push(Tok::RParen);
                if !f.is_empty() {
                    toks.push(Tok::Fields(f));
                }
            }
            b'|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            b',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            b':' if s[i..].starts_with(":=") => {
                toks.push(Tok::Declare);
                i += 2;
            }
            b'=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            b'"' => {
                let mut out = String::new();
                let mut j = i + 1;
                let mut chars = s[j..].char_indices();
                let mut closed = false;
                while let Some((k, ch)) = chars.next() {
                    match ch {
                        '"' => {
                            j += k + 1;
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next().map(|x| x.1) {
                            Some('n') => out.push('\n'),
                            Some('t') => out.push('\t'),
                            Some('r') => out.push('\r'),
                            Some(o) => out.push(o),
                            None => {}
                        },
                        ch => out.push(ch),
                    }
                }
                if !closed {
                    return Err("unterminated quoted string".into());
                }
                toks.push(Tok::Str(out));
                i = j;
            }
            b'`' => {
                let end = s[i + 1..]
                    .find('`')
                    .ok_or("unterminated raw quoted string")?;
                toks.push(Tok::Str(s[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            b'$' => {
                let st = i + 1;
                let mut j = st;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let name = s[st..j].to_string();
                i = j;
                let f = fields(&mut i);
                toks.push(Tok::Var(name, f));
            }
            b'.' => {
                if i + 1 < b.len() && b[i + 1].is_ascii_digit() {
                    let j = number_end(b, i);
                    toks.push(Tok::Num(s[i..j].to_string()));
                    i = j;
                } else {
                    let f = fields(&mut i);
                    if f.is_empty() {
                        i += 1;
                    }
                    toks.push(Tok::Field(f));
                }
            }
            c if c.is_ascii_digit()
                || ((c == b'-' || c == b'+')
                    && i + 1 < b.len()
                    && (b[i + 1].is_ascii_digit() || b[i + 1] == b'.')) =>
            {
                let j = number_end(b, i + 1);
                toks.push(Tok::Num(s[i..j].to_string()));
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                toks.push(Tok::Ident(s[i..j].to_string()));
                i = j;
            }
            other => return Err(format!("unexpected {:?} in action", other as char)),
        }
    }
}

fn number_end(b: &[u8], mut j: usize) -> usize {
    while j < b.len()
        && (b[j].is_ascii_alphanumeric()
            || b[j] == b'.'
            || b[j] == b'_'
            || ((b[j] == b'-' || b[j] == b'+') && matches!(b[j - 1], b'e' | b'E')))
    {
        j += 1;
    }
    j
}

/// Parses template source into nodes.
pub fn parse(src: &str) -> Result<Vec<Node>, String> {
    let items = lex(src)?;
    let mut p = Parser { items, pos: 0 };
    let (nodes, end) = p.list()?;
    match end {
        None => Ok(nodes),
        Some(End::End) => Err("unexpected {{end}}".into()),
        Some(End::Else(_)) => Err("unexpected {{else}}".into()),
    }
}

enum End {
    End,
    /// `else`, with the tokens after it (`else if ...`).
    Else(Vec<Tok>),
}

struct Parser {
    items: Vec<Item>,
    pos: usize,
}

impl Parser {
    /// Parses nodes up to an `end`/`else` (returned) or the end of input.
    fn list(&mut self) -> Result<(Vec<Node>, Option<End>), String> {
        let mut nodes = Vec::new();
        while self.pos < self.items.len() {
            let idx = self.pos;
            self.pos += 1;
            let toks = match &self.items[idx] {
                Item::Text(t) => {
                    nodes.push(Node::Text(t.clone()));
                    continue;
                }
                Item::Action(t) => t.clone(),
            };
            match toks.first() {
                Some(Tok::Ident(k)) if k == "end" => return Ok((nodes, Some(End::End))),
                Some(Tok::Ident(k)) if k == "else" => {
                    return Ok((nodes, Some(End::Else(toks[1..].to_vec()))))
                }
                Some(Tok::Ident(k)) if matches!(k.as_str(), "if" | "range" | "with") => {
                    let kw = k.clone();
                    nodes.push(self.control(&kw, &toks[1..])?);
                }
                Some(Tok::Ident(k))
                    if matches!(
                        k.as_str(),
                        "define" | "template" | "block" | "break" | "continue"
                    ) =>
                {
                    return Err(format!("{{{{{k}}}}} is not supported in rule templates"));
                }
                None => return Err("missing value for command".into()),
                _ => nodes.push(Node::Action(pipeline(&toks)?)),
            }
        }
        Ok((nodes, None))
    }

    fn control(&mut self, kw: &str, toks: &[Tok]) -> Result<Node, String> {
        let pipe = pipeline(toks)?;
        let (body, end) = self.list()?;
        let els = match end {
            None => return Err(format!("unexpected EOF in {{{{{kw}}}}}")),
            Some(End::End) => Vec::new(),
            Some(End::Else(rest)) => {
                if rest.is_empty() {
                    let (els, end) = self.list()?;
                    match end {
                        Some(End::End) => els,
                        _ => return Err(format!("expected {{{{end}}}} in {{{{{kw}}}}}")),
                    }
                } else {
                    // `else if ...` / `else with ...`: a nested control sharing our end.
                    let Some(Tok::Ident(k2)) = rest.first() else {
                        return Err("unexpected tokens after else".into());
                    };
                    let k2 = k2.clone();
                    vec![self.control(&k2, &rest[1..])?]
                }
            }
        };
        Ok(match kw {
            "if" => Node::If(pipe, body, els),
            "range" => Node::Range(pipe, body, els),
            _ => Node::With(pipe, body, els),
        })
    }
}

/// Parses a pipeline from an action's tokens.
fn pipeline(toks: &[Tok]) -> Result<Pipeline, String> {
    let mut pos = 0;
    let mut decl = Vec::new();
    let mut assign = false;
    // `$x :=` or `$i, $e :=`
    let mut look = 0;
    let mut names = Vec::new();
    while let Some(Tok::Var(n, f)) = toks.get(look) {
        if !f.is_empty() {
            break;
        }
        names.push(n.clone());
        look += 1;
        if toks.get(look) == Some(&Tok::Comma) {
            look += 1;
            continue;
        }
        break;
    }
    if !names.is_empty() && matches!(toks.get(look), Some(Tok::Declare) | Some(Tok::Assign)) {
        assign = toks.get(look) == Some(&Tok::Assign);
        decl = names;
        pos = look + 1;
    }
    let (p, end) = parse_cmds(toks, pos)?;
    if end != toks.len() {
        return Err("unexpected ) in pipeline".into());
    }
    Ok(Pipeline {
        decl,
        assign,
        cmds: p,
    })
}

/// Parses commands from `pos` until the end or an unmatched `)`.
fn parse_cmds(toks: &[Tok], mut pos: usize) -> Result<(Vec<Command>, usize), String> {
    let mut cmds = Vec::new();
    let mut args = Vec::new();
    while pos < toks.len() {
        match &toks[pos] {
            Tok::RParen => break,
            Tok::Pipe => {
                if args.is_empty() {
                    return Err("missing command before |".into());
                }
                cmds.push(Command {
                    args: std::mem::take(&mut args),
                });
                pos += 1;
            }
            Tok::LParen => {
                let (inner, end) = parse_cmds(toks, pos + 1)?;
                if toks.get(end) != Some(&Tok::RParen) {
                    return Err("unclosed left paren".into());
                }
                pos = end + 1;
                let mut fields = Vec::new();
                if let Some(Tok::Fields(f)) = toks.get(pos) {
                    fields = f.clone();
                    pos += 1;
                }
                args.push(Operand::Sub(
                    Box::new(Pipeline {
                        decl: Vec::new(),
                        assign: false,
                        cmds: inner,
                    }),
                    fields,
                ));
            }
            Tok::Str(s) => {
                args.push(Operand::Str(s.clone()));
                pos += 1;
            }
            Tok::Num(n) => {
                args.push(parse_number(n)?);
                pos += 1;
            }
            Tok::Ident(id) => {
                args.push(match id.as_str() {
                    "true" => Operand::Bool(true),
                    "false" => Operand::Bool(false),
                    "nil" => Operand::Nil,
                    _ if super::funcs::KNOWN.contains(&id.as_str()) => Operand::Func(id.clone()),
                    _ => return Err(format!("function {id:?} not defined")),
                });
                pos += 1;
            }
            Tok::Var(n, f) => {
                args.push(Operand::Var(n.clone(), f.clone()));
                pos += 1;
            }
            Tok::Field(f) => {
                args.push(Operand::Field(f.clone()));
                pos += 1;
            }
            Tok::Fields(_) | Tok::Declare | Tok::Assign | Tok::Comma => {
                return Err("unexpected token in pipeline".into())
            }
        }
    }
    if args.is_empty() {
        if cmds.is_empty() {
            return Err("missing value for command".into());
        }
        return Err("missing command after |".into());
    }
    cmds.push(Command { args });
    Ok((cmds, pos))
}

fn parse_number(n: &str) -> Result<Operand, String> {
    let clean = n.replace('_', "");
    if let Some(hex) = clean.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16)
            .map(Operand::Int)
            .map_err(|_| format!("bad number {n:?}"));
    }
    if let Ok(i) = clean.parse::<i64>() {
        return Ok(Operand::Int(i));
    }
    clean
        .parse::<f64>()
        .map(Operand::Float)
        .map_err(|_| format!("bad number syntax: {n:?}"))
}
