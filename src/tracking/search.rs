//! `runs/search` filters and orderings: MLflow's grammar (`metrics.acc > 0.9 AND
//! params.lr = '0.1' AND tags."mlflow.runName" LIKE 'sweep%'`), parsed into clauses that
//! are evaluated against a run's facts.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::MlflowError;

/// The facts a filter looks at, for one run.
#[derive(Debug, Default)]
pub struct RunFacts {
    pub metrics: BTreeMap<String, f64>,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// `status`, `run_name`, `run_id`, `user_id`, `artifact_uri` as strings;
    /// `start_time`, `end_time` as numbers.
    pub attributes: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Number(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Metric,
    Param,
    Tag,
    Attribute,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like { case_sensitive: bool },
    In { negated: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub entity: Entity,
    pub key: String,
    pub op: Op,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub entity: Entity,
    pub key: String,
    pub ascending: bool,
}

const ATTRIBUTES: &[&str] = &[
    "status",
    "run_name",
    "run_id",
    "user_id",
    "artifact_uri",
    "start_time",
    "end_time",
    "created",
    "Created",
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Number(f64),
    Symbol(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, MlflowError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' || c == '`' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == c)
                .ok_or_else(|| bad(text, &format!("an unclosed {c} quote")))?;
            out.push(Token::Quoted(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if "=!<>".contains(c) {
            let two = chars.get(i + 1) == Some(&'=');
            let sym: String = if two {
                [c, '='].iter().collect()
            } else {
                c.to_string()
            };
            if sym == "!" {
                return Err(bad(text, "'!' without '='"));
            }
            i += sym.len();
            out.push(Token::Symbol(sym));
        } else if c == '(' || c == ')' || c == ',' {
            out.push(Token::Symbol(c.to_string()));
            i += 1;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"=!<>(),'\"`".contains(chars[i])
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // `metrics."a b"`: a dotted prefix followed by a quoted key.
            if word.ends_with('.') && i < chars.len() && "'\"`".contains(chars[i]) {
                out.push(Token::Word(word));
                continue;
            }
            match word.parse::<f64>() {
                Ok(n) if !word.contains(|c: char| c.is_alphabetic() && c != 'e' && c != 'E') => {
                    out.push(Token::Number(n))
                }
                _ => out.push(Token::Word(word)),
            }
        }
    }
    Ok(out)
}

fn bad(text: &str, why: &str) -> MlflowError {
    MlflowError::invalid(format!(
        "cannot read the search filter '{text}': {why}; write clauses like `metrics.acc > 0.9 AND params.lr = '0.1'`"
    ))
}

fn entity(prefix: &str) -> Option<Entity> {
    match prefix {
        "metric" | "metrics" => Some(Entity::Metric),
        "param" | "params" | "parameter" | "parameters" => Some(Entity::Param),
        "tag" | "tags" => Some(Entity::Tag),
        "attribute" | "attributes" | "attr" | "run" => Some(Entity::Attribute),
        _ => None,
    }
}

/// Reads an identifier at `tokens[*i]`: `metrics.acc`, `tags."a b"`, `status`.
fn identifier(
    text: &str,
    tokens: &[Token],
    i: &mut usize,
) -> Result<(Entity, String), MlflowError> {
    let Some(Token::Word(w)) = tokens.get(*i) else {
        return Err(bad(text, "expected an identifier such as `metrics.acc`"));
    };
    *i += 1;
    let (prefix, key) = match w.split_once('.') {
        Some((p, k)) => (p, k.to_string()),
        None => ("attributes", w.clone()),
    };
    let ent = entity(prefix).ok_or_else(|| {
        bad(
            text,
            &format!("unknown entity '{prefix}'; use metrics., params., tags. or attributes."),
        )
    })?;
    let key = if key.is_empty() {
        match tokens.get(*i) {
            Some(Token::Quoted(q)) => {
                *i += 1;
                q.clone()
            }
            _ => return Err(bad(text, &format!("'{w}' names no key"))),
        }
    } else {
        key
    };
    if ent == Entity::Attribute && !ATTRIBUTES.contains(&key.as_str()) {
        return Err(bad(
            text,
            &format!(
                "unknown attribute '{key}'; known: status, run_name, run_id, user_id, artifact_uri, start_time, end_time"
            ),
        ));
    }
    let key = if key == "created" || key == "Created" {
        "start_time".to_string()
    } else {
        key
    };
    Ok((ent, key))
}

fn literal(text: &str, t: Option<&Token>) -> Result<Value, MlflowError> {
    match t {
        Some(Token::Quoted(s)) => Ok(Value::Text(s.clone())),
        Some(Token::Number(n)) => Ok(Value::Number(*n)),
        _ => Err(bad(
            text,
            "expected a quoted string or a number after the operator",
        )),
    }
}

/// Parses a filter; an empty one matches every run.
pub fn parse_filter(text: &str) -> Result<Vec<Clause>, MlflowError> {
    let tokens = tokenize(text)?;
    let mut clauses = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if !clauses.is_empty() {
            match &tokens[i] {
                Token::Word(w) if w.eq_ignore_ascii_case("and") => i += 1,
                _ => {
                    return Err(bad(
                        text,
                        "clauses must be joined with AND (OR is not supported)",
                    ));
                }
            }
        }
        let (entity, key) = identifier(text, &tokens, &mut i)?;
        let op = match tokens.get(i) {
            Some(Token::Symbol(s)) => match s.as_str() {
                "=" | "==" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                other => return Err(bad(text, &format!("unexpected '{other}'"))),
            },
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("like") => Op::Like {
                case_sensitive: true,
            },
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("ilike") => Op::Like {
                case_sensitive: false,
            },
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("in") => Op::In { negated: false },
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("not") => {
                i += 1;
                match tokens.get(i) {
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("in") => {
                        Op::In { negated: true }
                    }
                    _ => return Err(bad(text, "NOT must be followed by IN")),
                }
            }
            _ => return Err(bad(text, &format!("expected an operator after '{key}'"))),
        };
        i += 1;
        let values = if let Op::In { .. } = op {
            if tokens.get(i) != Some(&Token::Symbol("(".into())) {
                return Err(bad(text, "IN takes a list: IN ('a', 'b')"));
            }
            i += 1;
            let mut vals = Vec::new();
            loop {
                vals.push(literal(text, tokens.get(i))?);
                i += 1;
                match tokens.get(i) {
                    Some(Token::Symbol(s)) if s == "," => i += 1,
                    Some(Token::Symbol(s)) if s == ")" => {
                        i += 1;
                        break;
                    }
                    _ => return Err(bad(text, "an IN list ends with ')'")),
                }
            }
            vals
        } else {
            let v = literal(text, tokens.get(i))?;
            i += 1;
            vec![v]
        };
        if entity == Entity::Metric && values.iter().any(|v| matches!(v, Value::Text(_))) {
            return Err(bad(
                text,
                &format!("metric '{key}' is compared with a number"),
            ));
        }
        clauses.push(Clause {
            entity,
            key,
            op,
            values,
        });
    }
    Ok(clauses)
}

/// Parses `order_by` entries such as `metrics.acc DESC` or `attributes.start_time`.
pub fn parse_order(items: &[String]) -> Result<Vec<OrderBy>, MlflowError> {
    items
        .iter()
        .map(|item| {
            let tokens = tokenize(item)?;
            let mut i = 0;
            let (entity, key) = identifier(item, &tokens, &mut i)?;
            let ascending = match tokens.get(i) {
                None => true,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("asc") => true,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("desc") => false,
                _ => return Err(bad(item, "an ordering ends with ASC or DESC")),
            };
            Ok(OrderBy {
                entity,
                key,
                ascending,
            })
        })
        .collect()
}

fn fact(run: &RunFacts, entity: Entity, key: &str) -> Option<Value> {
    match entity {
        Entity::Metric => run.metrics.get(key).map(|v| Value::Number(*v)),
        Entity::Param => run.params.get(key).map(|v| Value::Text(v.clone())),
        Entity::Tag => run.tags.get(key).map(|v| Value::Text(v.clone())),
        Entity::Attribute => run.attributes.get(key).cloned(),
    }
}

/// SQL `LIKE`: `%` any run of characters, `_` one character.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    fn go(t: &[char], p: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('%') => (0..=t.len()).any(|k| go(&t[k..], &p[1..])),
            Some('_') => !t.is_empty() && go(&t[1..], &p[1..]),
            Some(c) => t.first() == Some(c) && go(&t[1..], &p[1..]),
        }
    }
    go(&t, &p)
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.partial_cmp(y),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Number(x), Value::Text(y)) => y.parse::<f64>().ok().and_then(|y| x.partial_cmp(&y)),
        (Value::Text(x), Value::Number(y)) => x.parse::<f64>().ok().and_then(|x| x.partial_cmp(y)),
    }
}

/// Whether a run passes every clause. A clause on a missing metric, param or tag fails
/// (MLflow's rule), except `!=` and `NOT IN`, which also fail: absent is not a value.
pub fn matches(run: &RunFacts, clauses: &[Clause]) -> bool {
    clauses.iter().all(|c| {
        let Some(have) = fact(run, c.entity, &c.key) else {
            return false;
        };
        let want = &c.values[0];
        match &c.op {
            Op::Eq => compare(&have, want) == Some(Ordering::Equal),
            Op::Ne => compare(&have, want) != Some(Ordering::Equal),
            Op::Lt => compare(&have, want) == Some(Ordering::Less),
            Op::Le => matches!(compare(&have, want), Some(Ordering::Less | Ordering::Equal)),
            Op::Gt => compare(&have, want) == Some(Ordering::Greater),
            Op::Ge => matches!(
                compare(&have, want),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            Op::Like { case_sensitive } => match (&have, want) {
                (Value::Text(h), Value::Text(p)) if *case_sensitive => like(h, p),
                (Value::Text(h), Value::Text(p)) => like(&h.to_lowercase(), &p.to_lowercase()),
                _ => false,
            },
            Op::In { negated } => {
                let found = c
                    .values
                    .iter()
                    .any(|v| compare(&have, v) == Some(Ordering::Equal));
                found != *negated
            }
        }
    })
}

/// Orders runs; a run missing the key goes last whatever the direction (MLflow's rule).
pub fn order(a: &RunFacts, b: &RunFacts, by: &[OrderBy]) -> Ordering {
    for o in by {
        let (x, y) = (fact(a, o.entity, &o.key), fact(b, o.entity, &o.key));
        let ord = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => {
                let ord = compare(&x, &y).unwrap_or(Ordering::Equal);
                if o.ascending { ord } else { ord.reverse() }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(acc: f64, lr: &str, name: &str, status: &str) -> RunFacts {
        RunFacts {
            metrics: [("acc".to_string(), acc)].into(),
            params: [("lr".to_string(), lr.to_string())].into(),
            tags: [("mlflow.runName".to_string(), name.to_string())].into(),
            attributes: [
                ("status".to_string(), Value::Text(status.into())),
                ("start_time".to_string(), Value::Number(acc * 1000.0)),
            ]
            .into(),
        }
    }

    #[test]
    fn filters_match_what_they_say() {
        let a = run(0.9, "0.1", "sweep-1", "FINISHED");
        let b = run(0.5, "0.01", "Other", "FAILED");
        let f = parse_filter("metrics.acc > 0.8 AND params.lr = '0.1'").unwrap();
        assert!(matches(&a, &f) && !matches(&b, &f));
        let f = parse_filter("tags.\"mlflow.runName\" ILIKE 'SWEEP%'").unwrap();
        assert!(matches(&a, &f) && !matches(&b, &f));
        let f = parse_filter("tags.`mlflow.runName` LIKE '%ther'").unwrap();
        assert!(!matches(&a, &f) && matches(&b, &f));
        let f = parse_filter("attributes.status IN ('FAILED', 'KILLED')").unwrap();
        assert!(!matches(&a, &f) && matches(&b, &f));
        let f = parse_filter("status NOT IN ('FAILED')").unwrap();
        assert!(matches(&a, &f) && !matches(&b, &f));
        let f = parse_filter("metrics.missing >= 0").unwrap();
        assert!(!matches(&a, &f));
        assert!(matches(&a, &parse_filter("").unwrap()));
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        for (text, says) in [
            ("metrics.acc > 0.8 OR params.lr = '1'", "AND"),
            ("bogus.acc > 1", "unknown entity"),
            ("metrics.acc >", "quoted string or a number"),
            ("params.lr = 'open", "unclosed"),
            ("attributes.colour = 'x'", "unknown attribute"),
            ("metrics.acc = 'high'", "number"),
            ("status IN 'x'", "IN takes a list"),
        ] {
            let e = parse_filter(text).unwrap_err();
            assert!(e.message.contains(says), "{text}: {}", e.message);
        }
    }

    #[test]
    fn ordering_puts_missing_last() {
        let a = run(0.9, "0.1", "a", "FINISHED");
        let b = run(0.5, "0.01", "b", "FINISHED");
        let none = RunFacts::default();
        let desc = parse_order(&["metrics.acc DESC".into()]).unwrap();
        assert_eq!(order(&a, &b, &desc), Ordering::Less);
        assert_eq!(order(&none, &b, &desc), Ordering::Greater);
        let asc = parse_order(&["attributes.start_time".into()]).unwrap();
        assert_eq!(order(&a, &b, &asc), Ordering::Greater);
        assert!(parse_order(&["metrics.acc sideways".into()]).is_err());
    }
}
