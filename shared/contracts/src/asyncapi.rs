//! The AsyncAPI 3.0 document of the topics and of the sync gateway's
//! WebSocket (`shared/contracts/asyncapi.json`), and the few look-ups the
//! tests that hold it to the code need (this crate's for the event types,
//! sync-gateway's for the socket messages and close codes).
//! `scripts/asyncapi/check.mjs` validates the document with the AsyncAPI
//! parser.

use serde_json::Value;

/// The document, as kept in the repo.
pub const ASYNCAPI: &str = include_str!("../asyncapi.json");

/// The parsed document.
pub fn document() -> serde_json::Result<Value> {
    serde_json::from_str(ASYNCAPI)
}

/// The id and object of the channel whose `address` is `address`.
pub fn channel<'a>(doc: &'a Value, address: &str) -> Option<(&'a str, &'a Value)> {
    doc["channels"]
        .as_object()?
        .iter()
        .find(|(_, c)| c["address"] == address)
        .map(|(id, c)| (id.as_str(), c))
}

/// The component message a local `$ref` (`#/components/messages/x` or
/// `#/channels/c/messages/x`) leads to, following one channel indirection.
pub fn message<'a>(doc: &'a Value, reference: &Value) -> Option<&'a Value> {
    let pointer = reference["$ref"].as_str()?.strip_prefix('#')?;
    let target = doc.pointer(pointer)?;
    match target.get("$ref") {
        Some(_) => message(doc, target),
        None => Some(target),
    }
}

/// The `name`s of the messages a channel carries.
pub fn channel_message_names<'a>(doc: &'a Value, channel: &'a Value) -> Vec<&'a str> {
    channel["messages"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|r| message(doc, r)?["name"].as_str())
        .collect()
}

/// The `name`s of the messages of every operation with `action` (`send` or
/// `receive`) on the channel with id `channel_id`.
pub fn operation_message_names<'a>(doc: &'a Value, channel_id: &str, action: &str) -> Vec<&'a str> {
    let channel_ref = format!("#/channels/{channel_id}");
    doc["operations"]
        .as_object()
        .into_iter()
        .flat_map(|ops| ops.values())
        .filter(|op| op["action"] == action && op["channel"]["$ref"] == channel_ref.as_str())
        .flat_map(|op| op["messages"].as_array().into_iter().flatten())
        .filter_map(|r| message(doc, r)?["name"].as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_parses_and_its_local_references_resolve() {
        let doc = document().expect("asyncapi.json is JSON");
        assert_eq!(doc["asyncapi"], "3.0.0");
        let (id, ws) = channel(&doc, "/ws/tasks").expect("the socket's channel");
        assert_eq!(id, "wsTasks");
        assert!(channel_message_names(&doc, ws).contains(&"hello"));
        assert!(operation_message_names(&doc, id, "receive").contains(&"auth"));
        assert_eq!(
            message(&doc, &serde_json::json!({"$ref": "#/nowhere"})),
            None
        );
    }
}
