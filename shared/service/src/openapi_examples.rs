//! Every example of an OpenAPI 3.1 document checked against the schema it
//! illustrates, so an example cannot show a field the schema forbids or
//! miss one it requires.
//!
//! OpenAPI 3.1 schemas are JSON Schema 2020-12 (its `$ref`s point into the
//! document: `#/components/schemas/Task`), so the whole document is
//! registered as one resource and each example is validated against a
//! `$ref` to its schema's JSON pointer in it; formats (`uuid`,
//! `date-time`, `email`) are asserted too. Examples are read from media
//! types, parameters and headers (`example`, and `examples` whose
//! `value`s may be `$ref`s to `#/components/examples`) and from schemas
//! (`examples`, an array, and the older `example`).

use jsonschema::Resource;
use serde_json::Value;

/// The URI the document is registered under.
const DOCUMENT_URI: &str = "urn:todo-events:openapi";

/// What [`example_problems`] found.
#[derive(Debug, Default)]
pub struct ExampleReport {
    /// Examples validated.
    pub checked: usize,
    /// One sentence per example that does not match its schema.
    pub problems: Vec<String>,
}

/// A test's assertion: every example of `document` matches its schema,
/// and there are at least `at_least` of them (so a document that lost its
/// examples does not pass by having nothing to check).
pub fn assert_examples_hold(document: &Value, at_least: usize) {
    let report = example_problems(document);
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert!(
        report.checked >= at_least,
        "only {} examples checked, expected at least {at_least}",
        report.checked
    );
}

/// Validates every example of `document` against its schema.
pub fn example_problems(document: &Value) -> ExampleReport {
    let mut found = Vec::new();
    collect(document, document, String::new(), &mut found);
    let mut report = ExampleReport::default();
    for (schema_pointer, example_at, example) in found {
        report.checked += 1;
        if let Err(problem) = validate_at(document, &schema_pointer, &example) {
            report.problems.push(format!("{example_at}: {problem}"));
        }
    }
    report
}

/// One example: where its schema is, where it is, and its value.
type Found = (String, String, Value);

fn collect(document: &Value, node: &Value, pointer: String, found: &mut Vec<Found>) {
    match node {
        Value::Object(map) => {
            let is_schema = is_schema_position(&pointer);
            if map.get("schema").is_some_and(Value::is_object) && !is_schema {
                let schema = format!("{pointer}/schema");
                if let Some(example) = map.get("example") {
                    found.push((
                        schema.clone(),
                        format!("{pointer}/example"),
                        example.clone(),
                    ));
                }
                if let Some(Value::Object(named)) = map.get("examples") {
                    for (name, entry) in named {
                        let at = format!("{pointer}/examples/{}", escape(name));
                        if let Some(value) = example_value(document, entry) {
                            found.push((schema.clone(), at, value));
                        }
                    }
                }
            }
            if is_schema {
                if let Some(Value::Array(examples)) = map.get("examples") {
                    for (i, example) in examples.iter().enumerate() {
                        found.push((
                            pointer.clone(),
                            format!("{pointer}/examples/{i}"),
                            example.clone(),
                        ));
                    }
                }
                if let Some(example) = map.get("example") {
                    found.push((
                        pointer.clone(),
                        format!("{pointer}/example"),
                        example.clone(),
                    ));
                }
            }
            for (key, value) in map {
                // An example's own content is data, not document structure.
                if matches!(key.as_str(), "example" | "examples" | "value") {
                    continue;
                }
                collect(document, value, format!("{pointer}/{}", escape(key)), found);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(document, item, format!("{pointer}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// Whether the object at `pointer` is a schema: the `schema` of a media
/// type, parameter or header, a component schema, or a subschema of one.
fn is_schema_position(pointer: &str) -> bool {
    let parts: Vec<&str> = pointer.split('/').collect();
    let Some(start) = parts.iter().position(|p| *p == "schema").or_else(|| {
        parts
            .windows(2)
            .position(|w| w == ["components", "schemas"])
            .map(|i| i + 2)
    }) else {
        return false;
    };
    // Below the schema root, every other step must be a keyword that
    // holds subschemas (`properties/<name>`, `items`, `oneOf/<i>`).
    let mut rest = parts.iter().skip(start + 1);
    while let Some(step) = rest.next() {
        match *step {
            "items"
            | "not"
            | "additionalProperties"
            | "contains"
            | "if"
            | "then"
            | "else"
            | "propertyNames"
            | "unevaluatedItems"
            | "unevaluatedProperties" => {}
            "properties" | "patternProperties" | "$defs" | "dependentSchemas" | "oneOf"
            | "anyOf" | "allOf" | "prefixItems" => {
                if rest.next().is_none() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    parts.len() > start
}

/// An Example Object's `value`, following a `$ref` to the components.
fn example_value(document: &Value, entry: &Value) -> Option<Value> {
    let entry = match entry.get("$ref").and_then(Value::as_str) {
        Some(reference) => document.pointer(reference.strip_prefix('#')?)?,
        None => entry,
    };
    entry.get("value").cloned()
}

/// Validates `instance` against the schema at `schema_pointer` (a JSON
/// pointer, `/components/schemas/Task`) of `document`: a test serialises
/// what the code answers and holds it to the documented schema.
pub fn validate_at(document: &Value, schema_pointer: &str, instance: &Value) -> Result<(), String> {
    let resource = Resource::from_contents(document.clone()).map_err(|e| e.to_string())?;
    let root = serde_json::json!({
        "$ref": format!("{DOCUMENT_URI}#{}", percent_encode(schema_pointer))
    });
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .with_resource(DOCUMENT_URI, resource)
        .build(&root)
        .map_err(|e| format!("the schema at {schema_pointer} does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} (at {})", e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Where the schema of a documented answer's body is: a JSON pointer for
/// [`validate_at`] to the schema of the first media type of `method
/// path`'s response `status` (following a `$ref` to the components), the
/// media type beside it; `None` when that answer is not documented or has
/// no body.
pub fn answer_schema(
    document: &Value,
    path: &str,
    method: &str,
    status: u16,
) -> Option<(String, String)> {
    let mut at = format!("/paths/{}/{method}/responses/{status}", escape(path));
    let answer = document.pointer(&at)?;
    if let Some(reference) = answer["$ref"].as_str() {
        at = reference.strip_prefix('#')?.to_owned();
    }
    let content = document.pointer(&format!("{at}/content"))?.as_object()?;
    let (media, _) = content.iter().next()?;
    Some((
        format!("{at}/content/{}/schema", escape(media)),
        media.clone(),
    ))
}

/// A JSON pointer token (RFC 6901: `~` and `/` escaped).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A JSON pointer as a URI fragment: `{id}` and the like percent-encoded
/// (referencing decodes them again).
fn percent_encode(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for byte in pointer.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn document() -> Value {
        json!({
            "openapi": "3.1.0",
            "paths": {
                "/things/{id}": {
                    "get": {
                        "parameters": [{
                            "name": "id", "in": "path", "required": true,
                            "schema": {"type": "string", "format": "uuid"},
                            "example": "0192f0c1-0000-7000-8000-000000000000"
                        }],
                        "responses": {"200": {"description": "one", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Thing"},
                            "examples": {
                                "inline": {"value": {"id": "0192f0c1-0000-7000-8000-000000000000", "n": 1}},
                                "shared": {"$ref": "#/components/examples/AThing"}
                            }
                        }}}}
                    }
                }
            },
            "components": {
                "schemas": {"Thing": {
                    "type": "object", "required": ["id"], "additionalProperties": false,
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "n": {"type": "integer", "minimum": 0, "examples": [0, 7]}
                    },
                    "examples": [{"id": "0192f0c1-0000-7000-8000-000000000001"}]
                }},
                "examples": {"AThing": {"value": {"id": "0192f0c1-0000-7000-8000-000000000002"}}}
            }
        })
    }

    #[test]
    fn every_kind_of_example_is_checked() {
        let report = example_problems(&document());
        assert_eq!(report.problems, Vec::<String>::new());
        // The parameter's, two of the response, the schema's and its property's two.
        assert_eq!(report.checked, 6);
    }

    #[test]
    fn a_wrong_example_is_named_where_it_is() {
        let mut doc = document();
        doc["components"]["examples"]["AThing"]["value"] = json!({"id": "not-a-uuid"});
        doc["components"]["schemas"]["Thing"]["properties"]["n"]["examples"] = json!([-1]);
        doc["paths"]["/things/{id}"]["get"]["parameters"][0]["example"] = json!(3);
        let report = example_problems(&doc);
        assert_eq!(report.checked, 5, "{report:?}");
        let mut at: Vec<&str> = report
            .problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        at.sort_unstable();
        assert_eq!(
            at,
            [
                "/components/schemas/Thing/properties/n/examples/0",
                "/paths/~1things~1{id}/get/parameters/0/example",
                "/paths/~1things~1{id}/get/responses/200/content/application~1json/examples/shared",
            ],
            "{report:?}"
        );
    }

    #[test]
    fn answers_lead_to_their_schemas() {
        let mut doc = document();
        doc["components"]["responses"] = json!({"Gone": {"description": "gone", "content": {
            "application/problem+json": {"schema": {"type": "object"}}}}});
        doc["paths"]["/things/{id}"]["get"]["responses"]["404"] =
            json!({"$ref": "#/components/responses/Gone"});
        doc["paths"]["/things/{id}"]["get"]["responses"]["204"] = json!({"description": "none"});
        let at = |status| answer_schema(&doc, "/things/{id}", "get", status);
        assert_eq!(
            at(200),
            Some((
                "/paths/~1things~1{id}/get/responses/200/content/application~1json/schema".into(),
                "application/json".into()
            ))
        );
        assert_eq!(
            at(404).unwrap().0,
            "/components/responses/Gone/content/application~1problem+json/schema"
        );
        assert_eq!(at(204), None);
        assert_eq!(at(500), None);
    }

    /// The inverse of [`percent_encode`], as referencing applies it.
    fn percent_decode(s: &str) -> Vec<u8> {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn any_pointer_survives_the_fragment(pointer in "(/[^/]{0,12}){0,6}") {
            let fragment = percent_encode(&pointer);
            proptest::prop_assert!(fragment.bytes().all(|b| b.is_ascii_graphic()));
            let unsafe_in_fragment = ['{', '}', '#', ' ', '"', '<', '>'];
            proptest::prop_assert!(!fragment.contains(unsafe_in_fragment), "{}", fragment);
            proptest::prop_assert_eq!(percent_decode(&fragment), pointer.as_bytes());
        }

        /// Whatever a path is spelt with (`~`, `/`, `%`, `{`, `#`), its
        /// example is found and held to its own schema.
        #[test]
        fn any_path_key_reaches_its_schema(path in "/[ -~]{0,16}", wrong in proptest::bool::ANY) {
            let example = if wrong { json!("one") } else { json!(1) };
            let doc = json!({"openapi": "3.1.0", "paths": {path.clone(): {"get": {"responses": {"200": {
                "description": "n",
                "content": {"application/json": {"schema": {"type": "integer"}, "example": example}}
            }}}}}});
            let report = example_problems(&doc);
            proptest::prop_assert_eq!(report.checked, 1);
            proptest::prop_assert_eq!(report.problems.len(), usize::from(wrong), "{:?}", report.problems);
        }
    }

    #[test]
    fn pointers_become_fragments() {
        assert_eq!(
            percent_encode("/paths/~1a~1{id}/get"),
            "/paths/~1a~1%7Bid%7D/get"
        );
        assert!(is_schema_position("/components/schemas/Thing"));
        assert!(is_schema_position("/components/schemas/Thing/properties/n"));
        assert!(!is_schema_position("/components/schemas/Thing/properties"));
        assert!(is_schema_position(
            "/paths/~1a/get/responses/200/content/x/schema/items"
        ));
        assert!(!is_schema_position("/paths/~1a/get"));
    }
}
