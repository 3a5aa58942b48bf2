//! `--set key=value` overrides (as in `az ml job create --set`), applied to the YAML value.

use serde_yaml::{Mapping, Value};

use super::error::{Origin, SpecError};
use super::literal::{Literal, resolve_plain};

/// Apply `(dotted.key, value)` overrides to a parsed YAML document, in order.
///
/// Values are read as YAML: a flow collection when they start with `[` or `{`, otherwise a
/// scalar resolved with the same YAML 1.1 rules as the file (`0.1` a float, `yes` a boolean,
/// `1e-3` a string). Missing intermediate mappings are created; `a.0` or `a[0]` index into an
/// existing list. Errors name `--set <key>` instead of a file position.
pub fn apply_overrides(value: &mut Value, overrides: &[(&str, &str)]) -> Result<(), SpecError> {
    apply(value, overrides).map(|_| ())
}

/// [`apply_overrides`], returning each key as a field path (`deps[0].name`) for error lookup.
pub(crate) fn apply(
    value: &mut Value,
    overrides: &[(&str, &str)],
) -> Result<Vec<String>, SpecError> {
    overrides
        .iter()
        .map(|(key, raw)| apply_one(value, key, raw))
        .collect()
}

fn invalid(key: &str, message: String, help: String) -> SpecError {
    SpecError::InvalidValue {
        origin: Origin::Override {
            key: key.to_string(),
        },
        field: key.to_string(),
        message,
        help,
    }
}

/// Split `a.b[0].c` / `a.b.0.c` into segments.
fn segments(key: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() && (out.is_empty() || rest.is_empty()) {
            return None;
        }
        if !name.is_empty() {
            out.push(name.to_string());
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']')?;
            let index = &inner[..close];
            index.parse::<usize>().ok()?;
            out.push(index.to_string());
            rest = &inner[close + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// The YAML value an override's text stands for.
pub(crate) fn override_value(key: &str, raw: &str) -> Result<Value, SpecError> {
    let trimmed = raw.trim();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        return serde_yaml::from_str(trimmed).map_err(|e| SpecError::Syntax {
            origin: Origin::Override { key: key.to_string() },
            message: format!("the value `{raw}` is not a valid YAML flow collection ({e})"),
            help: "write lists as `[a, b]` and mappings as `{k: v}`, or quote the whole --set value in the shell".into(),
        });
    }
    Ok(match resolve_plain(trimmed) {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(b),
        Literal::Int(i) => match (i64::try_from(i), u64::try_from(i)) {
            (Ok(v), _) => Value::Number(v.into()),
            (_, Ok(v)) => Value::Number(v.into()),
            _ => Value::String(trimmed.to_string()),
        },
        Literal::Float(f) => Value::Number(f.into()),
        Literal::Str(_) => Value::String(raw.to_string()),
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn apply_one(root: &mut Value, key: &str, raw: &str) -> Result<String, SpecError> {
    let Some(segs) = segments(key) else {
        return Err(invalid(
            key,
            format!("`{key}` is not a field path"),
            "write the path with dots, e.g. `--set inputs.learning_rate=0.01` or `--set resources.instance_count=2`".into(),
        ));
    };
    let new_value = override_value(key, raw)?;
    let mut path = String::new();
    let mut current = root;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        if current.is_null() {
            *current = Value::Mapping(Mapping::new());
        }
        let here = if path.is_empty() {
            "the document".to_string()
        } else {
            format!("`{path}`")
        };
        current = match current {
            Value::Mapping(map) => {
                path = super::index::join(&path, seg);
                let k = Value::String(seg.clone());
                if last {
                    map.insert(k, new_value);
                    return Ok(path);
                }
                map.entry(k).or_insert(Value::Null)
            }
            Value::Sequence(items) => {
                let Ok(n) = seg.parse::<usize>() else {
                    return Err(invalid(
                        key,
                        format!("{here} is a list, so `{seg}` must be an item number"),
                        format!("index list items from 0, e.g. `--set {path}[0]=...`"),
                    ));
                };
                let len = items.len();
                path = format!("{path}[{n}]");
                let Some(item) = items.get_mut(n) else {
                    return Err(invalid(
                        key,
                        format!("{here} has {len} item(s); there is no item {n}"),
                        "overrides can replace list items but not append them; edit the file to add one".into(),
                    ));
                };
                if last {
                    *item = new_value;
                    return Ok(path);
                }
                item
            }
            other => {
                return Err(invalid(
                    key,
                    format!(
                        "{here} is {}, so `{key}` cannot set a field inside it",
                        kind(other)
                    ),
                    format!("override {here} itself, e.g. `--set {path}=...`"),
                ));
            }
        };
    }
    // `segments` never returns an empty list, so the loop always returns.
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn sets_nested_values_creating_maps() {
        let mut v = doc("inputs:\n  lr: 0.1\n");
        apply_overrides(
            &mut v,
            &[("inputs.lr", "0.5"), ("resources.instance_count", "2")],
        )
        .unwrap();
        assert_eq!(
            v,
            doc("inputs:\n  lr: 0.5\nresources:\n  instance_count: 2\n")
        );
    }

    #[test]
    fn values_follow_yaml_11() {
        let mut v = doc("a: 1");
        apply_overrides(
            &mut v,
            &[
                ("b", "1e-3"),
                ("c", "yes"),
                ("d", "[1, 2]"),
                ("e", "python x.py --y: 1"),
            ],
        )
        .unwrap();
        assert_eq!(v["b"], Value::String("1e-3".into()));
        assert_eq!(v["c"], Value::Bool(true));
        assert_eq!(v["d"], doc("[1, 2]"));
        assert_eq!(v["e"], Value::String("python x.py --y: 1".into()));
    }

    #[test]
    fn indexes_lists_and_reports_paths() {
        let mut v = doc("deps:\n- a\n- b\n");
        let keys = apply(&mut v, &[("deps[1]", "c"), ("deps.0", "z")]).unwrap();
        assert_eq!(keys, ["deps[1]", "deps[0]"]);
        assert_eq!(v, doc("deps: [z, c]"));
    }

    #[test]
    fn errors_name_the_override() {
        let mut v = doc("command: echo hi");
        let err = apply_overrides(&mut v, &[("command.x", "1")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--set command.x: `command` is a string"),
            "{err}"
        );
        let err = apply_overrides(&mut v, &[("a..b", "1")]).unwrap_err();
        assert_eq!(err.field(), Some("a..b"));
        let err = apply_overrides(&mut v, &[("x", "{a: [")]).unwrap_err();
        assert!(matches!(err, SpecError::Syntax { .. }));
    }
}
