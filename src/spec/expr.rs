//! `${{...}}` expressions and `$[[...]]` optional blocks in a job's command.

use std::collections::BTreeMap;

use super::document::Document;
use super::error::{Origin, SpecError, backticked, nearest};
use super::io::{Input, Output};

/// A piece of a command template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    /// `${{ inner }}`; `source` is the whole expression as written.
    Ref {
        source: &'a str,
        inner: &'a str,
    },
    /// `$[[ ... ]]`.
    Optional {
        source: &'a str,
        pieces: Vec<Piece<'a>>,
    },
}

/// What a `${{...}}` refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target<'a> {
    Input(&'a str),
    Output(&'a str),
    /// `search_space.x` (sweep trials only).
    SearchSpace(&'a str),
    Other(&'a str),
}

fn target(inner: &str) -> Target<'_> {
    let simple = |name: &str| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if let Some(name) = inner.strip_prefix("inputs.").filter(|n| simple(n)) {
        return Target::Input(name);
    }
    if let Some(name) = inner.strip_prefix("outputs.").filter(|n| simple(n)) {
        return Target::Output(name);
    }
    if let Some(name) = inner.strip_prefix("search_space.").filter(|n| simple(n)) {
        return Target::SearchSpace(name);
    }
    Target::Other(inner)
}

/// A malformed template: message, help, and the text to point at.
struct TemplateError {
    message: String,
    help: String,
    needle: String,
}

fn excerpt(text: &str) -> String {
    text.chars().take(24).collect()
}

fn parse(template: &str, in_block: bool) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    loop {
        let next = [rest.find("${{"), rest.find("$[[")]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = next else {
            if !rest.is_empty() {
                pieces.push(Piece::Text(rest));
            }
            return Ok(pieces);
        };
        if at > 0 {
            pieces.push(Piece::Text(&rest[..at]));
        }
        let tail = &rest[at..];
        if tail.starts_with("${{") {
            let Some(close) = tail.find("}}") else {
                return Err(TemplateError {
                    message: format!(
                        "`{}` opens an expression with `${{{{` that is never closed",
                        excerpt(tail)
                    ),
                    help: "close it with `}}`, e.g. `${{inputs.data}}`".into(),
                    needle: excerpt(tail),
                });
            };
            let source = &tail[..close + 2];
            let inner = source[3..close].trim();
            if inner.is_empty() {
                return Err(TemplateError {
                    message: "empty expression `${{}}`".into(),
                    help: "write `${{inputs.<name>}}` or `${{outputs.<name>}}`, or remove it"
                        .into(),
                    needle: source.to_string(),
                });
            }
            pieces.push(Piece::Ref { source, inner });
            rest = &tail[close + 2..];
        } else {
            if in_block {
                return Err(TemplateError {
                    message: "`$[[` inside another `$[[ ... ]]` block".into(),
                    help: "optional blocks cannot be nested; close the first with `]]` before opening another".into(),
                    needle: excerpt(tail),
                });
            }
            let Some(close) = tail.find("]]") else {
                return Err(TemplateError {
                    message: format!(
                        "`{}` opens an optional block with `$[[` that is never closed",
                        excerpt(tail)
                    ),
                    help: "close it with `]]`, e.g. `$[[--seed ${{inputs.seed}}]]`".into(),
                    needle: excerpt(tail),
                });
            };
            let source = &tail[..close + 2];
            let inner = parse(&tail[3..close], true)?;
            pieces.push(Piece::Optional {
                source,
                pieces: inner,
            });
            rest = &tail[close + 2..];
        }
    }
}

/// Why an expression other than `inputs.x`/`outputs.x` cannot be used in a command job.
fn other_context(expr: &str) -> (String, String) {
    let head = expr.split('.').next().unwrap_or(expr);
    match head {
        "search_space" => (
            format!("`${{{{{expr}}}}}` only works in the trial of a sweep job, and this is a command job"),
            "declare the value under `inputs:` and use `${{inputs.<name>}}`, or make this a sweep job (`type: sweep` with the command under `trial:` and the values under `search_space:`)".into(),
        ),
        "parent" => (
            format!("`${{{{{expr}}}}}` is a binding, and a command uses its own inputs"),
            "in a pipeline step, bind the value under the step's `inputs:` (`x: ${{parent.inputs.x}}`) and use `${{inputs.x}}` in the command".into(),
        ),
        "name" | "output_name" | "default_datastore" => (
            format!("`${{{{{expr}}}}}` is expanded by Azure in output paths only, not in a command"),
            "use it in an output's `path:`, or drop it from the command".into(),
        ),
        "inputs" | "outputs" => (
            format!("`${{{{{expr}}}}}` is not a valid reference"),
            format!("write `${{{{{head}.<name>}}}}` with a name made of letters, digits and `_`"),
        ),
        _ => (
            format!("unknown expression `${{{{{expr}}}}}`"),
            "a command job's command can use `${{inputs.<name>}}` and `${{outputs.<name>}}`".into(),
        ),
    }
}

fn undeclared(kind: &str, name: &str, declared: Vec<&str>) -> (String, String) {
    let hint = nearest(name, declared.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    let message = format!(
        "`${{{{{kind}.{name}}}}}` refers to an {} that is not declared{hint}",
        &kind[..kind.len() - 1]
    );
    let help = if declared.is_empty() {
        format!("declare it under `{kind}:` (this job declares no {kind})")
    } else {
        format!(
            "declare `{name}` under `{kind}:`, or use one of {}",
            backticked(&declared)
        )
    };
    (message, help)
}

/// Check every expression in `command` against the declared inputs and outputs.
///
/// `search_space` is the list of search-space names when `command` is a sweep trial's (then
/// `${{search_space.x}}` must name one of them, and `${{inputs.x}}` may name one too: the SDK
/// rewrites it to `${{search_space.x}}`), `None` for a command job.
pub(crate) fn validate_command(
    doc: &Document,
    field: &str,
    command: &str,
    inputs: &BTreeMap<String, Input>,
    outputs: &BTreeMap<String, Output>,
    search_space: Option<&[&str]>,
) -> Result<(), SpecError> {
    let pieces =
        parse(command, false).map_err(|e| doc.expression(field, &e.needle, e.message, e.help))?;
    let fail = |source: &str, (message, help): (String, String)| {
        doc.expression(field, source, message, help)
    };
    let input_names = || inputs.keys().map(String::as_str).collect::<Vec<_>>();
    for piece in &pieces {
        match piece {
            Piece::Text(_) => {}
            Piece::Ref { source, inner } => match target(inner) {
                Target::Input(name) if search_space.is_some_and(|s| s.contains(&name)) => {}
                Target::SearchSpace(name) => match search_space {
                    Some(names) if names.contains(&name) => {}
                    Some(names) => {
                        return Err(fail(source, undeclared_dimension(name, names)));
                    }
                    None => return Err(fail(source, other_context(inner))),
                },
                Target::Input(name) => match inputs.get(name) {
                    None => return Err(fail(source, undeclared("inputs", name, input_names()))),
                    Some(input) if !input.has_value() && input.is_optional() => {
                        return Err(fail(
                            source,
                            (
                                format!(
                                    "optional input `{name}` has no value here, so `{source}` would be left empty"
                                ),
                                format!(
                                    "wrap the part that uses it in an optional block: `$[[--{name} {source}]]`, or give the input a value"
                                ),
                            ),
                        ));
                    }
                    Some(input) if !input.has_value() => {
                        return Err(fail(
                            source,
                            (
                                format!("input `{name}` is used in the command but has no value"),
                                format!(
                                    "give `inputs.{name}` a value (or `path:` for data), or mark it `optional: true` and wrap its use in `$[[ ]]`"
                                ),
                            ),
                        ));
                    }
                    Some(_) => {}
                },
                Target::Output(name) if !outputs.contains_key(name) => {
                    return Err(fail(
                        source,
                        undeclared(
                            "outputs",
                            name,
                            outputs.keys().map(String::as_str).collect(),
                        ),
                    ));
                }
                Target::Output(_) => {}
                Target::Other(expr) => return Err(fail(source, other_context(expr))),
            },
            Piece::Optional { source, pieces } => {
                let mut any_input = false;
                for inner_piece in pieces {
                    let Piece::Ref { source: r, inner } = inner_piece else {
                        continue;
                    };
                    match target(inner) {
                        Target::Input(name) => match inputs.get(name) {
                            None => return Err(fail(r, undeclared("inputs", name, input_names()))),
                            Some(input) if !input.is_optional() => {
                                return Err(fail(
                                    r,
                                    (
                                        format!(
                                            "`{r}` is inside `$[[ ]]`, but input `{name}` is not optional"
                                        ),
                                        format!(
                                            "add `optional: true` to `inputs.{name}`, or move `{r}` out of the brackets"
                                        ),
                                    ),
                                ));
                            }
                            Some(_) => any_input = true,
                        },
                        Target::Output(_) | Target::SearchSpace(_) => {
                            return Err(fail(
                                r,
                                (
                                    format!(
                                        "`{r}` is inside `$[[ ]]`; optional blocks may only contain optional inputs"
                                    ),
                                    format!("move `{r}` out of the brackets"),
                                ),
                            ));
                        }
                        Target::Other(expr) => return Err(fail(r, other_context(expr))),
                    }
                }
                if !any_input {
                    return Err(fail(source, (
                        format!("optional block `{}` contains no `${{{{inputs.<name>}}}}`", excerpt(source)),
                        "an optional block is kept or dropped depending on an optional input inside it; add one, or remove the `$[[ ]]`".into(),
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Replace only the search-space references of `command` — `${{search_space.x}}`, and
/// `${{inputs.x}}` where `x` is one of the search-space `names` — with `values[x]`, leaving
/// every other expression as written for [`render_command`]. A referenced name missing from
/// `values` is an error (origin `Inline`).
pub(crate) fn substitute_search_space(
    command: &str,
    names: &[&str],
    values: &BTreeMap<String, String>,
) -> Result<String, SpecError> {
    let pieces = parse(command, false).map_err(|e| render_error(e.message, e.help))?;
    let mut out = String::with_capacity(command.len());
    for piece in &pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Optional { source, .. } => out.push_str(source),
            Piece::Ref { source, inner } => match target(inner) {
                Target::SearchSpace(name) => out.push_str(sampled(source, name, values)?),
                Target::Input(name) if names.contains(&name) => {
                    out.push_str(sampled(source, name, values)?)
                }
                _ => out.push_str(source),
            },
        }
    }
    Ok(out)
}

fn sampled<'v>(
    source: &str,
    name: &str,
    values: &'v BTreeMap<String, String>,
) -> Result<&'v str, SpecError> {
    values.get(name).map(String::as_str).ok_or_else(|| {
        render_error(
            format!("`{source}`: the trial has no value for search-space entry `{name}`"),
            "declare it under `search_space:` so every trial samples a value for it",
        )
    })
}

/// Whether `command` uses `${{<context>.<name>}}` anywhere (optional blocks included); false
/// for a malformed command.
pub(crate) fn mentions(command: &str, context: &str, name: &str) -> bool {
    fn any(pieces: &[Piece<'_>], wanted: &str) -> bool {
        pieces.iter().any(|p| match p {
            Piece::Text(_) => false,
            Piece::Ref { inner, .. } => *inner == wanted,
            Piece::Optional { pieces, .. } => any(pieces, wanted),
        })
    }
    parse(command, false).is_ok_and(|pieces| any(&pieces, &format!("{context}.{name}")))
}

fn undeclared_dimension(name: &str, declared: &[&str]) -> (String, String) {
    let hint = nearest(name, declared.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    (
        format!(
            "`${{{{search_space.{name}}}}}` refers to a search-space entry that is not declared{hint}"
        ),
        format!(
            "declare `{name}` under `search_space:`, or use one of {}",
            backticked(declared)
        ),
    )
}

fn render_error(message: String, help: impl Into<String>) -> SpecError {
    SpecError::Expression {
        origin: Origin::Inline,
        field: "command".into(),
        message,
        help: help.into(),
    }
}

/// Substitute `${{inputs.x}}` / `${{outputs.y}}` in `command` and resolve `$[[...]]` blocks.
///
/// `inputs` maps each input that has a value to its text (the container path for data, the
/// rendered literal — [`super::LiteralInput::rendered`] — for values); `outputs` maps outputs to
/// their container paths. An optional block is kept, without its brackets, when every input
/// inside it has a value, and dropped otherwise. Errors name no file (origin `Inline`).
pub fn render_command(
    command: &str,
    inputs: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, String>,
) -> Result<String, SpecError> {
    render_template(command, inputs, outputs, None)
}

/// [`render_command`] for a sweep trial: `search_space` maps each search-space name to the
/// text of the trial's sampled value, and `${{search_space.x}}` becomes that text.
pub(crate) fn render_template(
    command: &str,
    inputs: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, String>,
    search_space: Option<&BTreeMap<String, String>>,
) -> Result<String, SpecError> {
    let lookup = |source: &str, inner: &str| lookup(source, inner, inputs, outputs, search_space);
    let pieces = parse(command, false).map_err(|e| render_error(e.message, e.help))?;
    let mut out = String::with_capacity(command.len());
    for piece in &pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Ref { source, inner } => out.push_str(&lookup(source, inner)?),
            Piece::Optional { pieces, .. } => {
                let complete = pieces.iter().all(|p| match p {
                    Piece::Ref { inner, .. } => match target(inner) {
                        Target::Input(name) => inputs.contains_key(name),
                        _ => true,
                    },
                    _ => true,
                });
                if !complete {
                    continue;
                }
                for p in pieces {
                    match p {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Ref { source, inner } => out.push_str(&lookup(source, inner)?),
                        Piece::Optional { .. } => {}
                    }
                }
            }
        }
    }
    Ok(out)
}

fn lookup(
    source: &str,
    inner: &str,
    inputs: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, String>,
    search_space: Option<&BTreeMap<String, String>>,
) -> Result<String, SpecError> {
    match target(inner) {
        Target::SearchSpace(name) if search_space.is_some() => search_space
            .and_then(|s| s.get(name))
            .cloned()
            .ok_or_else(|| {
                render_error(
                    format!("`{source}`: the trial has no value for search-space entry `{name}`"),
                    "declare it under `search_space:` so every trial samples a value for it",
                )
            }),
        Target::Input(name) => inputs.get(name).cloned().ok_or_else(|| {
            render_error(
                format!("`{source}`: input `{name}` has no value"),
                "give the input a value, or make it optional and wrap its use in `$[[ ]]`",
            )
        }),
        Target::Output(name) => outputs.get(name).cloned().ok_or_else(|| {
            render_error(
                format!("`{source}`: output `{name}` has no path"),
                "declare the output under `outputs:`",
            )
        }),
        Target::SearchSpace(_) | Target::Other(_) => {
            let (message, help) = other_context(inner);
            Err(render_error(message, help))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitutes_inputs_and_outputs_with_or_without_spaces() {
        let inputs = map(&[("lr", "0.01"), ("data", "/mnt/inputs/data")]);
        let outputs = map(&[("model", "/mnt/outputs/model")]);
        let cmd = "python train.py --lr ${{inputs.lr}} --data ${{ inputs.data }} --out ${{outputs.model}}";
        assert_eq!(
            render_command(cmd, &inputs, &outputs).unwrap(),
            "python train.py --lr 0.01 --data /mnt/inputs/data --out /mnt/outputs/model"
        );
    }

    #[test]
    fn optional_blocks_are_kept_or_dropped() {
        let cmd =
            "python t.py $[[--seed ${{inputs.seed}}]] $[[--a ${{inputs.a}} --b ${{inputs.b}}]]";
        let none = BTreeMap::new();
        assert_eq!(
            render_command(cmd, &map(&[("seed", "7")]), &none).unwrap(),
            "python t.py --seed 7 "
        );
        assert_eq!(
            render_command(cmd, &map(&[("a", "1"), ("b", "2")]), &none).unwrap(),
            "python t.py  --a 1 --b 2"
        );
        assert_eq!(
            render_command(cmd, &map(&[("a", "1")]), &none).unwrap(),
            "python t.py  "
        );
    }

    #[test]
    fn render_errors_are_clear() {
        let none = BTreeMap::new();
        let e = render_command("echo ${{inputs.x}}", &none, &none).unwrap_err();
        assert!(e.to_string().contains("input `x` has no value"), "{e}");
        let e = render_command("echo ${{search_space.lr}}", &none, &none).unwrap_err();
        assert!(e.to_string().contains("sweep job"), "{e}");
        let e = render_command("echo ${{inputs.x", &none, &none).unwrap_err();
        assert!(e.to_string().contains("never closed"), "{e}");
        let e = render_command("a $[[b $[[c]] ]]", &none, &none).unwrap_err();
        assert!(e.to_string().contains("nested"), "{e}");
    }

    #[test]
    fn leaves_shell_brackets_and_braces_alone() {
        let none = BTreeMap::new();
        let cmd = "if [[ -f x ]]; then echo ${HOME} $((1+2)) {a}; fi";
        assert_eq!(render_command(cmd, &none, &none).unwrap(), cmd);
    }
}
