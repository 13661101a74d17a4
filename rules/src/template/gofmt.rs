//! Go's `fmt` number formatting (`%v`, `%g`, `%e`, `%f`, `%d`) as the
//! templates of Prometheus print numbers, and a `printf` for the verbs
//! rule templates use.

use super::value::Value;

/// The decimal digits of `v` (no leading or trailing zeros) and the
/// position of the decimal point: `v = 0.d1d2... * 10^dp`. `prec` rounds
/// to that many significant digits; `None` is the shortest round-trip form.
fn decimal_digits(v: f64, prec: Option<usize>) -> (String, i32) {
    let s = match prec {
        Some(p) => format!("{:.*e}", p.max(1) - 1, v.abs()),
        None => format!("{:e}", v.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if digits == "0" {
        return (digits, 1);
    }
    (digits, exp + 1)
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v == f64::INFINITY {
        Some("+Inf".into())
    } else if v == f64::NEG_INFINITY {
        Some("-Inf".into())
    } else {
        None
    }
}

fn exp_suffix(e: i32) -> String {
    let sign = if e < 0 { '-' } else { '+' };
    format!("e{sign}{:02}", e.abs())
}

/// Go's `%e` with `prec` digits after the point.
pub fn fmt_e(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let s = format!("{:.*e}", prec, v);
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    format!("{mant}{}", exp_suffix(exp.parse().unwrap_or(0)))
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: the shortest `%e` form, as
/// Prometheus's API prints alert values.
pub fn fmt_e_shortest(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let s = format!("{v:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    format!("{mant}{}", exp_suffix(exp.parse().unwrap_or(0)))
}

/// Go's `%g` (`prec` significant digits; `None` for the shortest form, as
/// `%v` prints a float64).
pub fn fmt_g(v: f64, prec: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let prec = prec.map(|p| p.max(1));
    let neg = v.is_sign_negative() && v != 0.0;
    let (digits, dp) = decimal_digits(v, prec);
    let nd = digits.len() as i32;
    let mut eprec = prec.map(|p| p as i32).unwrap_or(6);
    if prec.is_some() && eprec > nd && nd >= dp {
        eprec = nd;
    }
    if prec.is_none() {
        eprec = 6;
    }
    let exp = dp - 1;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&exp_suffix(exp));
    } else if dp <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-dp) as usize));
        out.push_str(&digits);
    } else if dp >= nd {
        out.push_str(&digits);
        out.push_str(&"0".repeat((dp - nd) as usize));
    } else {
        out.push_str(&digits[..dp as usize]);
        out.push('.');
        out.push_str(&digits[dp as usize..]);
    }
    out
}

/// Go's `%v` of a float64.
pub fn fmt_float(v: f64) -> String {
    fmt_g(v, None)
}

/// One parsed `%` directive.
#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(s: String, spec: &Spec) -> String {
    let Some(w) = spec.width else { return s };
    let len = s.chars().count();
    if len >= w {
        return s;
    }
    let fill = w - len;
    if spec.minus {
        format!("{s}{}", " ".repeat(fill))
    } else if spec.zero {
        let (sign, rest) = match s.strip_prefix('-') {
            Some(r) => ("-", r.to_string()),
            None => match s.strip_prefix('+') {
                Some(r) => ("+", r.to_string()),
                None => ("", s.clone()),
            },
        };
        format!("{sign}{}{rest}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

fn with_sign(s: String, v: f64, spec: &Spec) -> String {
    if v >= 0.0 && !s.starts_with('+') {
        if spec.plus {
            return format!("+{s}");
        }
        if spec.space {
            return format!(" {s}");
        }
    }
    s
}

fn bad_verb(verb: char, arg: &Value) -> String {
    format!("%!{verb}({}={})", arg.go_type(), arg.render())
}

fn format_one(verb: char, spec: &Spec, arg: &Value) -> String {
    let s = match (verb, arg) {
        ('v', _) | ('s', Value::Str(_)) => arg.render(),
        ('s', _) => bad_verb(verb, arg),
        ('q', Value::Str(s)) => format!("{s:?}"),
        ('t', Value::Bool(b)) => b.to_string(),
        ('d', Value::Int(i)) => with_sign(i.to_string(), *i as f64, spec),
        ('x', Value::Int(i)) => format!("{i:x}"),
        ('X', Value::Int(i)) => format!("{i:X}"),
        ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
        ('f' | 'F', v) if v.as_f64().is_some() => {
            let f = v.as_f64().unwrap_or_default();
            match special(f) {
                Some(s) => s,
                None => with_sign(format!("{:.*}", spec.prec.unwrap_or(6), f), f, spec),
            }
        }
        ('e' | 'E', v) if v.as_f64().is_some() => {
            let f = v.as_f64().unwrap_or_default();
            let s = with_sign(fmt_e(f, spec.prec.unwrap_or(6)), f, spec);
            if verb == 'E' {
                s.to_uppercase()
            } else {
                s
            }
        }
        ('g' | 'G', v) if v.as_f64().is_some() => {
            let f = v.as_f64().unwrap_or_default();
            let s = with_sign(fmt_g(f, spec.prec), f, spec);
            if verb == 'G' {
                s.to_uppercase()
            } else {
                s
            }
        }
        _ => bad_verb(verb, arg),
    };
    pad(s, spec)
}

/// Go's `fmt.Sprintf` for the common verbs (`%v %s %q %d %f %e %g %x %t
/// %%`, flags `-+ 0`, width and precision).
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        let num = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
                chars.next();
            }
            n
        };
        spec.width = num(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(num(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next) {
            Some(arg) => out.push_str(&format_one(verb, &spec, arg)),
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
        next += 1;
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", a.go_type(), a.render()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go() {
        assert_eq!(fmt_float(0.95), "0.95");
        assert_eq!(fmt_float(1.0), "1");
        assert_eq!(fmt_float(1e6), "1e+06");
        assert_eq!(fmt_float(123456.0), "123456");
        assert_eq!(fmt_float(1.23456789e8), "1.23456789e+08");
        assert_eq!(fmt_float(0.0001), "0.0001");
        assert_eq!(fmt_float(0.00001), "1e-05");
        assert_eq!(fmt_float(-2.5), "-2.5");
        assert_eq!(fmt_g(100.0, Some(4)), "100");
        assert_eq!(fmt_g(1.5, Some(4)), "1.5");
        assert_eq!(fmt_g(12345.0, Some(4)), "1.234e+04");
        assert_eq!(fmt_g(0.0, Some(4)), "0");
        assert_eq!(fmt_g(2.0 / 3.0, Some(4)), "0.6667");
        assert_eq!(fmt_e(1234.5678, 2), "1.23e+03");
    }

    #[test]
    fn printf_verbs() {
        let args = [Value::Float(0.91234), Value::Str("x".into()), Value::Int(7)];
        assert_eq!(sprintf("%.2f %s %d%%", &args), "0.91 x 7%");
        assert_eq!(
            sprintf("%5.1f|%-3d|", &[Value::Float(2.25), Value::Int(1)]),
            "  2.2|1  |"
        );
        assert_eq!(sprintf("%d", &[]), "%!d(MISSING)");
        assert_eq!(sprintf("%v", &[Value::Float(1e6)]), "1e+06");
    }
}
