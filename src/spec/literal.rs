//! Literal values as Azure ML sees them: YAML 1.1 (PyYAML) resolution and Python `str()` text.
//!
//! Azure reads job files with PyYAML `safe_load` (YAML 1.1) and substitutes `${{inputs.x}}`
//! with Python's `str()` of the value. serde_norway is YAML 1.2 and neither reports whether a
//! scalar was quoted nor its source text, so the parse keeps serde's value only as a first
//! guess: `document` recovers each literal's raw source text from the position index
//! (`index.rs`) and, when the scalar was plain (unquoted, single line), re-resolves that text
//! here with PyYAML's implicit resolvers (`resolve_plain`). Quoted and block scalars are
//! strings in both YAML versions, so they keep serde's value.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A scalar value as PyYAML would construct it.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i128),
    Float(f64),
    Bool(bool),
    Null,
}

impl Literal {
    /// Python `str()` of the value: what Azure substitutes for `${{inputs.x}}`.
    pub fn render(&self) -> String {
        match self {
            Literal::Str(s) => s.clone(),
            Literal::Int(i) => i.to_string(),
            Literal::Float(f) => python_float_repr(*f),
            Literal::Bool(true) => "True".into(),
            Literal::Bool(false) => "False".into(),
            Literal::Null => "None".into(),
        }
    }

    /// A short description for error messages (`string "abc"`, `integer 5`...).
    pub fn describe(&self) -> String {
        match self {
            Literal::Str(s) => format!("string {s:?}"),
            Literal::Int(i) => format!("integer {i}"),
            Literal::Float(f) => format!("number {}", python_float_repr(*f)),
            Literal::Bool(b) => format!("boolean {}", Literal::Bool(*b).render()),
            Literal::Null => "null".into(),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl Serialize for Literal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Literal::Str(v) => s.serialize_str(v),
            Literal::Int(v) => match i64::try_from(*v) {
                Ok(small) => s.serialize_i64(small),
                Err(_) => s.serialize_i128(*v),
            },
            Literal::Float(v) => s.serialize_f64(*v),
            Literal::Bool(v) => s.serialize_bool(*v),
            Literal::Null => s.serialize_unit(),
        }
    }
}

impl<'de> Deserialize<'de> for Literal {
    /// YAML 1.2 reading (serde's); `document` re-resolves plain scalars with YAML 1.1 rules.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LiteralVisitor)
    }
}

struct LiteralVisitor;

impl<'de> Visitor<'de> for LiteralVisitor {
    type Value = Literal;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a single value (string, number or boolean)")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Literal, E> {
        Ok(Literal::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Literal, E> {
        Ok(Literal::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Literal, E> {
        Ok(Literal::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Literal, E> {
        Ok(Literal::Int(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Literal, E> {
        Ok(Literal::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Literal, E> {
        Ok(Literal::Str(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Literal, E> {
        Ok(Literal::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Literal, E> {
        Ok(Literal::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Literal, D::Error> {
        d.deserialize_any(self)
    }
}

/// A scalar that becomes a string (environment variables, tags): Python `str()` of its value.
///
/// Null is rejected: Azure wants a value for every entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ScalarString(pub String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScalarString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a single value (string, number or boolean)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarString, E> {
                Ok(ScalarString(Literal::Bool(v).render()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarString, E> {
                Ok(ScalarString(python_float_repr(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Resolve a plain (unquoted) scalar's source text the way PyYAML's `SafeLoader` does.
///
/// Booleans are `yes/no/true/false/on/off` in lower, Title or UPPER case only (PyYAML leaves
/// out YAML 1.1's `y`/`n`); integers allow `_`, `0b`, `0x`, leading-zero octal and base-60
/// `1:30`; floats need a dot (`1e-3` is a string, `1.0e-3` a float) and a signed exponent;
/// timestamps become Python's `str(datetime)`.
pub fn resolve_plain(text: &str) -> Literal {
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Literal::Null;
    }
    if matches!(
        text,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON"
    ) {
        return Literal::Bool(true);
    }
    if matches!(
        text,
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF"
    ) {
        return Literal::Bool(false);
    }
    if let Some(i) = yaml11_int(text) {
        return i;
    }
    if let Some(f) = yaml11_float(text) {
        return Literal::Float(f);
    }
    if let Some(t) = yaml11_timestamp(text) {
        return Literal::Str(t);
    }
    Literal::Str(text.to_string())
}

fn split_sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

fn all(s: &str, ok: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(ok)
}

/// PyYAML int: `[-+]?(0b[01_]+ | 0[0-7_]+ | 0 | [1-9][0-9_]* | 0x[0-9a-fA-F_]+ | [1-9][0-9_]*(:[0-5]?[0-9])+)`.
fn yaml11_int(text: &str) -> Option<Literal> {
    let (negative, body) = split_sign(text);
    let value: i128 = if let Some(bin) = body.strip_prefix("0b") {
        all(bin, |c| matches!(c, '0' | '1' | '_')).then_some(())?;
        radix(bin, 2)?
    } else if let Some(hex) = body.strip_prefix("0x") {
        all(hex, |c| c.is_ascii_hexdigit() || c == '_').then_some(())?;
        radix(hex, 16)?
    } else if body == "0" {
        0
    } else if let Some(oct) = body.strip_prefix('0') {
        all(oct, |c| matches!(c, '0'..='7' | '_')).then_some(())?;
        radix(oct, 8)?
    } else if body.contains(':') {
        let mut parts = body.split(':');
        let head = parts.next()?;
        let first = head.chars().next()?;
        (first != '0' && all(head, |c| c.is_ascii_digit() || c == '_')).then_some(())?;
        let mut total = radix(head, 10)?;
        for part in parts {
            sexagesimal_digit(part)?;
            total = total
                .checked_mul(60)?
                .checked_add(part.parse::<i128>().ok()?)?;
        }
        total
    } else {
        let first = body.chars().next()?;
        (first != '0' && all(body, |c| c.is_ascii_digit() || c == '_')).then_some(())?;
        radix(body, 10)?
    };
    Some(Literal::Int(if negative { -value } else { value }))
}

/// `[0-5]?[0-9]`
fn sexagesimal_digit(part: &str) -> Option<()> {
    let b = part.as_bytes();
    let ok = match b.len() {
        1 => b[0].is_ascii_digit(),
        2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
        _ => false,
    };
    ok.then_some(())
}

fn radix(digits: &str, base: u32) -> Option<i128> {
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if clean.is_empty() {
        // PyYAML would call int('', base) and fail; `0b_` is not a number worth supporting.
        return None;
    }
    i128::from_str_radix(&clean, base).ok()
}

/// PyYAML float: `[-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)? | \.[0-9][0-9_]*([eE][-+][0-9]+)?
/// | [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN)`.
fn yaml11_float(text: &str) -> Option<f64> {
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    let (negative, body) = split_sign(text);
    let sign = if negative { -1.0 } else { 1.0 };
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return Some(sign * f64::INFINITY);
    }
    let signed = body.len() != text.len();
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(exp) = exponent {
        let digits = exp.strip_prefix(['-', '+'])?;
        all(digits, |c| c.is_ascii_digit()).then_some(())?;
    }
    let (whole, fraction) = mantissa.split_once('.')?;
    all(fraction, |c| c.is_ascii_digit() || c == '_')
        .then_some(())
        .or(fraction.is_empty().then_some(()))?;
    if whole.is_empty() {
        // `.5`: no sign allowed, fraction must start with a digit.
        (!signed && fraction.starts_with(|c: char| c.is_ascii_digit())).then_some(())?;
    } else if whole.contains(':') {
        exponent.is_none().then_some(())?;
        let mut parts = whole.split(':');
        let head = parts.next()?;
        (head.starts_with(|c: char| c.is_ascii_digit())
            && all(head, |c| c.is_ascii_digit() || c == '_'))
        .then_some(())?;
        let mut total: f64 = head.replace('_', "").parse().ok()?;
        for part in parts {
            sexagesimal_digit(part)?;
            total = total * 60.0 + part.parse::<f64>().ok()?;
        }
        let frac: String = fraction.chars().filter(|c| *c != '_').collect();
        let frac: f64 = format!("0.{frac}0").parse().ok()?;
        return Some(sign * (total * 60.0 + frac * 60.0) / 60.0);
    } else {
        (whole.starts_with(|c: char| c.is_ascii_digit())
            && all(whole, |c| c.is_ascii_digit() || c == '_'))
        .then_some(())?;
    }
    let clean: String = body.chars().filter(|c| *c != '_').collect();
    let clean = if clean.ends_with('.') {
        format!("{clean}0")
    } else {
        clean.replace(".e", ".0e").replace(".E", ".0E")
    };
    let clean = if clean.starts_with('.') {
        format!("0{clean}")
    } else {
        clean
    };
    clean.parse::<f64>().ok().map(|f| sign * f)
}

/// A YAML 1.1 timestamp, rendered like Python's `str()` of the `date`/`datetime` PyYAML builds.
fn yaml11_timestamp(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if b.len() == 10
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
    {
        return Some(text.to_string());
    }
    // YYYY-M?M-D?D([Tt]|[ \t]+)H?H:MM:SS(.frac)?([ \t]*(Z|[-+]H?H(:MM)?))?
    let (date, rest) = text.split_at(text.find(['T', 't', ' ', '\t'])?);
    let mut ymd = date.split('-');
    let (year, month, day) = (ymd.next()?, ymd.next()?, ymd.next()?);
    let short = |s: &str| (1..=2).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit());
    (ymd.next().is_none() && year.len() == 4 && year.bytes().all(|c| c.is_ascii_digit()))
        .then_some(())?;
    (short(month) && short(day)).then_some(())?;
    let rest = rest
        .strip_prefix(['T', 't'])
        .unwrap_or_else(|| rest.trim_start_matches([' ', '\t']));
    let tz_at = rest.find(['Z', '+', '-', ' ', '\t']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(tz_at);
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (clock, None),
    };
    let mut parts = hms.split(':');
    let (hour, minute, second) = (parts.next()?, parts.next()?, parts.next()?);
    let two = |s: &str| s.len() == 2 && s.bytes().all(|c| c.is_ascii_digit());
    (parts.next().is_none() && short(hour) && two(minute) && two(second)).then_some(())?;
    let mut out = format!(
        "{year}-{:0>2}-{:0>2} {:0>2}:{minute}:{second}",
        month, day, hour
    );
    if let Some(frac) = fraction {
        frac.bytes().all(|c| c.is_ascii_digit()).then_some(())?;
        let micro: String = format!("{frac:0<6}").chars().take(6).collect();
        if micro != "000000" {
            out.push('.');
            out.push_str(&micro);
        }
    }
    let zone = zone.trim_start_matches([' ', '\t']);
    if zone == "Z" {
        out.push_str("+00:00");
    } else if !zone.is_empty() {
        let sign = zone.chars().next().filter(|c| matches!(c, '+' | '-'))?;
        let hm = &zone[1..];
        let (h, m) = hm.split_once(':').unwrap_or((hm, "00"));
        (short(h) && two(m)).then_some(())?;
        out.push_str(&format!("{sign}{h:0>2}:{m}"));
    }
    Some(out)
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form when the decimal exponent
/// is < -4 or >= 16 (`1e-05`, `1e+20`), otherwise positional with at least one decimal (`1.0`).
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if negative { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}e{esign}{:02}", exp.abs());
    }
    let body = if exp < 0 {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else {
        let point = exp as usize + 1;
        if digits.len() > point {
            format!("{}.{}", &digits[..point], &digits[point..])
        } else {
            format!("{digits}{}.0", "0".repeat(point - digits.len()))
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(plain: &str) -> String {
        resolve_plain(plain).render()
    }

    #[test]
    fn yaml11_booleans_render_as_python_bools() {
        for t in [
            "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
        ] {
            assert_eq!(render(t), "True", "{t}");
        }
        for f in [
            "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
        ] {
            assert_eq!(render(f), "False", "{f}");
        }
        // PyYAML's resolver has no y/n and no mixed case.
        for s in ["y", "n", "Y", "N", "yEs", "tRUE"] {
            assert_eq!(resolve_plain(s), Literal::Str(s.into()), "{s}");
        }
    }

    #[test]
    fn ints_render_in_decimal() {
        assert_eq!(render("42"), "42");
        assert_eq!(render("-7"), "-7");
        assert_eq!(render("+5"), "5");
        assert_eq!(render("1_000"), "1000");
        assert_eq!(render("0"), "0");
        assert_eq!(render("017"), "15");
        assert_eq!(render("0x1F"), "31");
        assert_eq!(render("0b101"), "5");
        assert_eq!(render("1:30"), "90");
        assert_eq!(resolve_plain("0o17"), Literal::Str("0o17".into()));
        assert_eq!(resolve_plain("09"), Literal::Str("09".into()));
    }

    #[test]
    fn floats_render_like_python_repr() {
        assert_eq!(render("0.001"), "0.001");
        assert_eq!(render("1.0e-5"), "1e-05");
        assert_eq!(render("1.0e+20"), "1e+20");
        assert_eq!(render("1.0"), "1.0");
        assert_eq!(render("0.1"), "0.1");
        assert_eq!(render("1."), "1.0");
        assert_eq!(render(".5"), "0.5");
        assert_eq!(render("-2.50"), "-2.5");
        assert_eq!(render("1_000.5"), "1000.5");
        assert_eq!(render(".inf"), "inf");
        assert_eq!(render("-.Inf"), "-inf");
        assert_eq!(render(".NaN"), "nan");
        assert_eq!(render("1:30.5"), "90.5");
        assert_eq!(python_float_repr(1e16), "1e+16");
        assert_eq!(python_float_repr(1234567890123456.0), "1234567890123456.0");
        assert_eq!(python_float_repr(0.0001), "0.0001");
        assert_eq!(python_float_repr(0.00001), "1e-05");
        assert_eq!(python_float_repr(1.5e-7), "1.5e-07");
        assert_eq!(python_float_repr(-0.0), "-0.0");
        assert_eq!(
            python_float_repr(123456789012345678.0),
            "1.2345678901234568e+17"
        );
        assert_eq!(python_float_repr(1e100), "1e+100");
    }

    #[test]
    fn exponent_without_dot_or_sign_is_a_string() {
        assert_eq!(resolve_plain("1e-3"), Literal::Str("1e-3".into()));
        assert_eq!(render("1e-3"), "1e-3");
        assert_eq!(resolve_plain("1.0e3"), Literal::Str("1.0e3".into()));
        assert_eq!(resolve_plain("-.5"), Literal::Str("-.5".into()));
        assert_eq!(render("1.0e-3"), "0.001");
    }

    #[test]
    fn nulls_and_strings() {
        for n in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(resolve_plain(n), Literal::Null);
        }
        assert_eq!(render("~"), "None");
        assert_eq!(render("hello world"), "hello world");
        assert_eq!(render("nULL"), "nULL");
        assert_eq!(render("1.2.3"), "1.2.3");
    }

    #[test]
    fn timestamps_render_like_python_datetime() {
        assert_eq!(render("2024-01-31"), "2024-01-31");
        assert_eq!(
            render("2001-12-14t21:59:43.10-05:00"),
            "2001-12-14 21:59:43.100000-05:00"
        );
        assert_eq!(
            render("2001-12-14 21:59:43.10 -5"),
            "2001-12-14 21:59:43.100000-05:00"
        );
        assert_eq!(
            render("2001-12-15T02:59:43.1Z"),
            "2001-12-15 02:59:43.100000+00:00"
        );
        assert_eq!(render("2002-12-14T01:02:03"), "2002-12-14 01:02:03");
        assert_eq!(render("2024-1-31"), "2024-1-31");
    }

    #[test]
    fn scalar_string_uses_python_text() {
        let v: std::collections::BTreeMap<String, ScalarString> =
            serde_yaml::from_str("a: true\nb: 1.5\nc: 3\nd: text").unwrap();
        assert_eq!(v["a"].0, "True");
        assert_eq!(v["b"].0, "1.5");
        assert_eq!(v["c"].0, "3");
        assert_eq!(v["d"].0, "text");
    }
}
