//! kubectl's JSONPath templates for `-o jsonpath=...`, the subset scripts
//! use: text with `{...}` expressions; a path of `.field`, `['field']`,
//! `[N]` (negative from the end), `[*]` or `.*`, and filters
//! `[?(@.path == "value")]` (also `!=`, or `[?(@.path)]` for "has it");
//! `{range PATH}...{end}` repeating its body for each value, with paths
//! inside relative to it; `{"text"}` for literal text such as `{"\n"}`.
//! Several values of one expression print separated by spaces; strings
//! print as they are, anything else as JSON. A path that finds nothing
//! prints nothing, as kubectl's default `--allow-missing-template-keys`.

use serde_json::Value;

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Filter { path: Vec<Step>, test: Test },
}

#[derive(Clone, Debug, PartialEq)]
enum Test {
    Exists,
    Equals(Value),
    Differs(Value),
}

impl Template {
    /// Parses a template.
    ///
    /// # Errors
    /// What is wrong and where, e.g. `unclosed action` or
    /// `unrecognized identifier` in kubectl's words.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut rest = text;
        let nodes = parse_nodes(&mut rest, false)?;
        Ok(Template { nodes })
    }

    /// The template applied to `root`.
    pub fn render(&self, root: &Value) -> String {
        let mut out = String::new();
        render(&self.nodes, root, &mut out);
        out
    }
}

/// Parses nodes until the end of the text, or until `{end}` when inside a
/// range.
fn parse_nodes(rest: &mut &str, in_range: bool) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    loop {
        let Some(open) = rest.find('{') else {
            if in_range {
                return Err("not in range, nothing to end: missing {end}".into());
            }
            if !rest.is_empty() {
                nodes.push(Node::Text(rest.to_string()));
            }
            *rest = "";
            return Ok(nodes);
        };
        if open > 0 {
            nodes.push(Node::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 1..];
        let close = closing_brace(after).ok_or_else(|| format!("unclosed action in {:?}", &rest[open..]))?;
        let action = after[..close].trim();
        *rest = &after[close + 1..];
        if action == "end" {
            if in_range {
                return Ok(nodes);
            }
            return Err("not in range, nothing to end".into());
        }
        if let Some(path) = action.strip_prefix("range ") {
            let path = parse_path(path.trim())?;
            let body = parse_nodes(rest, true)?;
            nodes.push(Node::Range(path, body));
        } else if action.starts_with('"') {
            nodes.push(Node::Text(string_literal(action)?));
        } else {
            nodes.push(Node::Path(parse_path(action)?));
        }
    }
}

/// Where the action opened before `text` closes, skipping braces inside
/// quotes.
fn closing_brace(text: &str) -> Option<usize> {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(_), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            _ => {}
        }
        escaped = false;
    }
    None
}

/// `"text"` with `\n`, `\t`, `\"` and `\\` escapes.
fn string_literal(text: &str) -> Result<String, String> {
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| format!("unterminated string {text:?}"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => return Err(format!("unterminated escape in {text:?}")),
        }
    }
    Ok(out)
}

fn parse_path(text: &str) -> Result<Vec<Step>, String> {
    let unrecognized = || format!("unrecognized identifier {text:?}");
    let mut steps = Vec::new();
    let mut rest = text.strip_prefix('$').unwrap_or(text);
    if rest.is_empty() {
        return Ok(steps);
    }
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            match name {
                "" if end == after.len() => {}
                "" => return Err(unrecognized()),
                "*" => steps.push(Step::All),
                _ => steps.push(Step::Field(name.to_string())),
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = closing_bracket(after).ok_or_else(unrecognized)?;
            steps.push(bracket(after[..end].trim()).map_err(|e| format!("{e} in {text:?}"))?);
            rest = &after[end + 1..];
        } else {
            return Err(unrecognized());
        }
    }
    Ok(steps)
}

/// Where a `[` opened before `text` closes, skipping quoted text.
fn closing_bracket(text: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

fn bracket(inside: &str) -> Result<Step, String> {
    if inside == "*" {
        return Ok(Step::All);
    }
    if let Some(filter) = inside.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        return parse_filter(filter.trim());
    }
    if let Some(name) = quoted(inside) {
        return Ok(Step::Field(name));
    }
    inside
        .parse::<i64>()
        .map(Step::Index)
        .map_err(|_| format!("unsupported index [{inside}]"))
}

fn quoted(text: &str) -> Option<String> {
    ['\'', '"']
        .into_iter()
        .find_map(|q| text.strip_prefix(q).and_then(|t| t.strip_suffix(q)).map(str::to_string))
}

/// `@.path == "value"`, `@.path != 3`, or `@.path`.
fn parse_filter(filter: &str) -> Result<Step, String> {
    let (left, test) = if let Some((left, right)) = filter.split_once("==") {
        (left, Test::Equals(literal(right.trim())?))
    } else if let Some((left, right)) = filter.split_once("!=") {
        (left, Test::Differs(literal(right.trim())?))
    } else {
        (filter, Test::Exists)
    };
    let path = left
        .trim()
        .strip_prefix('@')
        .ok_or_else(|| format!("unsupported filter {filter:?}"))?;
    Ok(Step::Filter {
        path: parse_path(path)?,
        test,
    })
}

fn literal(text: &str) -> Result<Value, String> {
    if let Some(text) = quoted(text) {
        return Ok(Value::String(text));
    }
    serde_json::from_str(text).map_err(|_| format!("unsupported value {text:?}"))
}

fn render(nodes: &[Node], current: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Path(path) => {
                let texts: Vec<String> = select(current, path).iter().map(|v| text(v)).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(path, body) => {
                for value in select(current, path) {
                    render(body, value, out);
                }
            }
        }
    }
}

/// Every value `path` reaches from `root`.
fn select<'a>(root: &'a Value, path: &[Step]) -> Vec<&'a Value> {
    let mut values = vec![root];
    for step in path {
        values = values.into_iter().flat_map(|value| children(value, step)).collect();
    }
    values
}

fn children<'a>(value: &'a Value, step: &Step) -> Vec<&'a Value> {
    match (step, value) {
        (Step::Field(name), Value::Object(map)) => map.get(name).into_iter().collect(),
        (Step::Index(index), Value::Array(items)) => {
            let at = if *index < 0 {
                i64::try_from(items.len()).unwrap_or(i64::MAX) + index
            } else {
                *index
            };
            usize::try_from(at)
                .ok()
                .and_then(|at| items.get(at))
                .into_iter()
                .collect()
        }
        (Step::All, Value::Array(items)) => items.iter().collect(),
        (Step::All, Value::Object(map)) => map.values().collect(),
        (Step::Filter { path, test }, Value::Array(items)) => items
            .iter()
            .filter(|item| {
                let found = select(item, path);
                match test {
                    Test::Exists => !found.is_empty(),
                    Test::Equals(wanted) => found.iter().any(|v| same(v, wanted)),
                    Test::Differs(wanted) => !found.is_empty() && found.iter().all(|v| !same(v, wanted)),
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Equal as JSON, or a number written as a string equal to a number.
fn same(value: &Value, wanted: &Value) -> bool {
    value == wanted || text(value) == text(wanted)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready: &str) -> Value {
        json!({
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web", "app.kubernetes.io/name": "shop"}},
            "spec": {"containers": [{"name": "a", "image": "nginx:1"}, {"name": "b", "image": "busybox"}]},
            "status": {
                "podIP": "10.0.0.7",
                "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": ready}],
                "containerStatuses": [{"restartCount": 2}],
            },
        })
    }

    fn render(template: &str, value: &Value) -> Result<String, String> {
        Ok(Template::parse(template)?.render(value))
    }

    #[test]
    fn paths_reach_fields_indexes_and_wildcards() {
        let pod = pod("web-1", "True");
        for (template, expected) in [
            ("{.status.podIP}", "10.0.0.7"),
            ("ip={.status.podIP}!", "ip=10.0.0.7!"),
            ("{.spec.containers[*].name}", "a b"),
            ("{.spec.containers[0].image}", "nginx:1"),
            ("{.spec.containers[-1].image}", "busybox"),
            ("{.metadata.labels['app.kubernetes.io/name']}", "shop"),
            ("{$.metadata.name}", "web-1"),
            ("{.status.containerStatuses[0].restartCount}", "2"),
            ("{.metadata.labels}", r#"{"app":"web","app.kubernetes.io/name":"shop"}"#),
            ("{.status.conditions[?(@.type==\"Ready\")].status}", "True"),
            ("{.status.conditions[?(@.type!='Ready')].type}", "PodScheduled"),
            ("{.spec.containers[?(@.image)].name}", "a b"),
            ("{\"a\\tb\\n\"}", "a\tb\n"),
        ] {
            assert_eq!(render(template, &pod).as_deref(), Ok(expected), "{template}");
        }
    }

    #[test]
    fn ranges_repeat_their_body_for_each_item() {
        let list = json!({"kind": "List", "items": [pod("a", "True"), pod("b", "False")]});
        let template =
            "{range .items[*]}{.metadata.name}{\"\\t\"}{.status.conditions[?(@.type=='Ready')].status}{\"\\n\"}{end}";
        assert_eq!(render(template, &list).as_deref(), Ok("a\tTrue\nb\tFalse\n"));
        assert_eq!(render("{.items[*].metadata.name}", &list).as_deref(), Ok("a b"));
        assert_eq!(
            render("{range .items[*]}[{.nothing[*]}]{end}", &list).as_deref(),
            Ok("[][]")
        );
    }

    #[test]
    fn mistakes_are_errors_not_guesses() {
        let pod = pod("web-1", "True");
        assert_eq!(
            render("[{.status.nothing}]", &pod).as_deref(),
            Ok("[]"),
            "missing prints nothing, as kubectl's"
        );
        for bad in [
            "{.status",
            "{range .items[*]}{.a}",
            "{end}",
            "{.a[x]}",
            "{status}",
            "{.a[?(x==1)]}",
            "{\"open}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
