//! The JSON-schema subset the contracts use, checked exactly as `feature_store/schema_check.py` does.
//!
//! Both sides implement the same keywords with the same rules, so a sizing file or a message is
//! accepted by Rust exactly when Python accepts it. Integers are JSON integer literals; numbers are
//! finite (serde_json cannot even hold a non-finite one). A keyword outside the subset is an error,
//! so a schema cannot ask for a check that neither side makes.

use serde_json::Value;

const KEYWORDS: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "$ref",
    "title",
    "description",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "items",
    "minItems",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "pattern",
];

/// Refuse a schema that uses a keyword outside the subset (checked once per embedded schema).
pub fn check_keywords(node: &Value, at: &str) -> Result<(), String> {
    let Value::Object(map) = node else { return Ok(()) };
    if let Some(k) = map.keys().find(|k| !KEYWORDS.contains(&k.as_str())) {
        return Err(format!("{at}: schema keyword {k:?} is outside the checked subset"));
    }
    for key in ["properties", "$defs"] {
        if let Some(Value::Object(subs)) = map.get(key) {
            for (name, sub) in subs {
                check_keywords(sub, &format!("{at}/{key}/{name}"))?;
            }
        }
    }
    for key in ["items", "additionalProperties", "propertyNames"] {
        if let Some(sub) = map.get(key) {
            check_keywords(sub, &format!("{at}/{key}"))?;
        }
    }
    Ok(())
}

/// A bound keyword and the test a value must pass against it.
type Bound = (&'static str, fn(f64, f64) -> bool);

const BOUNDS: [Bound; 4] = [
    ("minimum", |x, b| x >= b),
    ("maximum", |x, b| x <= b),
    ("exclusiveMinimum", |x, b| x > b),
    ("exclusiveMaximum", |x, b| x < b),
];

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => false,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}/{key}")
    }
}

/// Every violation of `schema` by `value` as "path: message" (empty when valid).
pub fn errors(value: &Value, schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(value, schema, schema, "", &mut out);
    out
}

fn walk(value: &Value, schema: &Value, root: &Value, path: &str, out: &mut Vec<String>) {
    let here = if path.is_empty() { "<root>" } else { path };
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        match root.get("$defs").and_then(|d| d.get(name)) {
            Some(sub) => walk(value, sub, root, path, out),
            None => out.push(format!("{here}: unresolved $ref {r}")),
        }
        return;
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            Value::String(s) => vec![s.as_str()],
            _ => vec![],
        };
        if !types.iter().any(|t| type_ok(t, value)) {
            out.push(format!("{here}: expected {}", types.join(" or ")));
            return;
        }
    }
    if let Some(c) = schema.get("const") {
        if c != value {
            out.push(format!("{here}: must be {c}"));
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        if !options.contains(value) {
            out.push(format!("{here}: {value} not one of {options:?}"));
        }
    }
    if let Some(x) = value.as_f64() {
        for (key, ok) in BOUNDS {
            if let Some(b) = schema.get(key).and_then(Value::as_f64) {
                if !ok(x, b) {
                    out.push(format!("{here}: {x} violates {key} {b}"));
                }
            }
        }
    }
    if let Some(s) = value.as_str() {
        if let Some(n) = schema.get("minLength").and_then(Value::as_u64) {
            if (s.chars().count() as u64) < n {
                out.push(format!("{here}: shorter than {n}"));
            }
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
            match regex::Regex::new(p) {
                Ok(re) if re.is_match(s) => {}
                Ok(_) => out.push(format!("{here}: {s:?} does not match {p}")),
                Err(e) => out.push(format!("{here}: bad pattern {p}: {e}")),
            }
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(n) = schema.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < n {
                out.push(format!("{here}: fewer than {n} items"));
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                walk(item, item_schema, root, &join(path, &i.to_string()), out);
            }
        }
    }
    if let Some(obj) = value.as_object() {
        if let Some(Value::Array(required)) = schema.get("required") {
            for k in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(k) {
                    out.push(format!("{here}: missing {k:?}"));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties");
        for (key, item) in obj {
            let sub = join(path, key);
            if let Some(names) = schema.get("propertyNames") {
                walk(&Value::String(key.clone()), names, root, &sub, out);
            }
            match (props.and_then(|p| p.get(key)), extra) {
                (Some(s), _) => walk(item, s, root, &sub, out),
                (None, Some(Value::Bool(false))) => out.push(format!("{sub}: unknown field")),
                (None, Some(s @ Value::Object(_))) => walk(item, s, root, &sub, out),
                (None, _) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_the_subset() {
        let schema = json!({
            "type": "object", "additionalProperties": false, "required": ["a", "b"],
            "$defs": {"pos": {"type": "number", "exclusiveMinimum": 0}},
            "properties": {"a": {"$ref": "#/$defs/pos"}, "b": {"type": ["string", "null"], "pattern": "^x"},
                           "c": {"type": "integer", "minimum": 1}}
        });
        assert!(errors(&json!({"a": 1.5, "b": null}), &schema).is_empty());
        assert!(errors(&json!({"a": 1.5, "b": "xy", "c": 2}), &schema).is_empty());
        assert_eq!(errors(&json!({"a": 0, "b": "y", "c": 2.0, "d": 1}), &schema).len(), 4);
        assert_eq!(errors(&json!({"b": true}), &schema).len(), 2);
        assert!(check_keywords(&schema, "s").is_ok());
        assert!(check_keywords(&json!({"properties": {"a": {"format": "x"}}}), "s").is_err());
    }
}
