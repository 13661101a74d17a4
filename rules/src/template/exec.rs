//! Executing a parsed template against data.

use std::collections::BTreeMap;

use super::funcs;
use super::parse::{Command, Node, Operand, Pipeline};
use super::value::Value;
use super::TemplateContext;

/// The most range iterations and output bytes one execution may produce.
const MAX_STEPS: usize = 100_000;
const MAX_OUTPUT: usize = 1 << 20;

/// One execution: variables in scope and the output so far.
pub struct Exec<'a> {
    vars: Vec<(String, Value)>,
    ctx: &'a TemplateContext<'a>,
    out: String,
    steps: usize,
}

impl<'a> Exec<'a> {
    /// An execution with `$` bound to `root` and the predefined variables.
    pub fn new(ctx: &'a TemplateContext<'a>, root: Value, vars: Vec<(String, Value)>) -> Self {
        let mut all = vec![(String::new(), root)];
        all.extend(vars);
        Self {
            vars: all,
            ctx,
            out: String::new(),
            steps: 0,
        }
    }

    /// Runs `nodes` with `dot` and returns the output.
    pub fn run(mut self, nodes: &[Node], dot: &Value) -> Result<String, String> {
        self.walk(nodes, dot)?;
        Ok(self.out)
    }

    fn step(&mut self) -> Result<(), String> {
        self.steps += 1;
        if self.steps > MAX_STEPS || self.out.len() > MAX_OUTPUT {
            return Err("template exceeds its execution limit".into());
        }
        Ok(())
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<(), String> {
        for node in nodes {
            self.step()?;
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&v.render());
                    }
                }
                Node::If(p, then, els) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    let r = if v.truthy() {
                        self.walk(then, dot)
                    } else {
                        self.walk(els, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::With(p, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    let r = if v.truthy() {
                        self.walk(body, &v)
                    } else {
                        self.walk(els, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::Range(p, body, els) => {
                    let mark = self.vars.len();
                    let decl = p.decl.clone();
                    let plain = Pipeline {
                        decl: Vec::new(),
                        assign: false,
                        cmds: p.cmds.clone(),
                    };
                    let v = self.pipeline(&plain, dot)?;
                    let items: Vec<(Value, Value)> = match v {
                        Value::List(l) => l
                            .into_iter()
                            .enumerate()
                            .map(|(i, e)| (Value::Int(i as i64), e))
                            .collect(),
                        Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
                        Value::Nil => Vec::new(),
                        Value::Int(n) => (0..n.clamp(0, MAX_STEPS as i64 + 1))
                            .map(|i| (Value::Int(i), Value::Int(i)))
                            .collect(),
                        other => {
                            return Err(format!("range can't iterate over {}", other.render()))
                        }
                    };
                    let r = if items.is_empty() {
                        self.walk(els, dot)
                    } else {
                        let mut r = Ok(());
                        for (k, e) in items {
                            self.step()?;
                            let inner = self.vars.len();
                            match decl.as_slice() {
                                [] => {}
                                [one] => self.vars.push((one.clone(), e.clone())),
                                [a, b, ..] => {
                                    self.vars.push((a.clone(), k));
                                    self.vars.push((b.clone(), e.clone()));
                                }
                            }
                            r = self.walk(body, &e);
                            self.vars.truncate(inner);
                            if r.is_err() {
                                break;
                            }
                        }
                        r
                    };
                    self.vars.truncate(mark);
                    r?;
                }
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, String> {
        let mut piped: Option<Value> = None;
        for cmd in &p.cmds {
            piped = Some(self.command(cmd, dot, piped)?);
        }
        let v = piped.unwrap_or(Value::Nil);
        if let Some(first) = p.decl.first() {
            if p.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == first) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return Err(format!("undefined variable: ${first}")),
                }
            } else {
                self.vars.push((first.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(
        &mut self,
        cmd: &Command,
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, String> {
        let Some(first) = cmd.args.first() else {
            return Err("empty command".into());
        };
        if let Operand::Func(name) = first {
            let mut args = Vec::with_capacity(cmd.args.len());
            for a in &cmd.args[1..] {
                args.push(self.operand(a, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return funcs::call(name, args, self.ctx);
        }
        if cmd.args.len() > 1 || piped.is_some() {
            return Err(format!("can't give argument to non-function {first:?}"));
        }
        self.operand(first, dot)
    }

    fn operand(&mut self, o: &Operand, dot: &Value) -> Result<Value, String> {
        Ok(match o {
            Operand::Field(fields) => walk_fields(dot.clone(), fields)?,
            Operand::Var(name, fields) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("undefined variable: ${name}"))?;
                walk_fields(v, fields)?
            }
            Operand::Str(s) => Value::Str(s.clone()),
            Operand::Int(i) => Value::Int(*i),
            Operand::Float(f) => Value::Float(*f),
            Operand::Bool(b) => Value::Bool(*b),
            Operand::Nil => Value::Nil,
            Operand::Func(name) => funcs::call(name, Vec::new(), self.ctx)?,
            Operand::Sub(p, fields) => {
                let v = self.pipeline(p, dot)?;
                walk_fields(v, fields)?
            }
        })
    }
}

fn walk_fields(mut v: Value, fields: &[String]) -> Result<Value, String> {
    for f in fields {
        v = v.field(f)?;
    }
    Ok(v)
}

/// A map of strings as a template value.
pub fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::labels(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}
