//! W3C Trace Context (`traceparent`): parsed from incoming requests, carried
//! with outbox rows, and sent to daprd on publish so that Dapr continues the
//! same trace into every subscriber.

use http::HeaderMap;
use rand::Rng;

pub const TRACEPARENT: &str = "traceparent";

/// A validated `traceparent` value (`00-<trace-id>-<parent-id>-<flags>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(String);

impl TraceParent {
    /// Parses a header value; anything malformed is rejected, as the spec
    /// asks, so a bad header starts a new trace instead of poisoning logs.
    pub fn parse(value: &str) -> Option<Self> {
        let parts: Vec<&str> = value.trim().split('-').collect();
        let [version, trace_id, parent_id, flags] = parts.as_slice() else {
            return None;
        };
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        let all_zero = |s: &str| s.bytes().all(|b| b == b'0');
        let valid = hex(version, 2)
            && *version != "ff"
            && hex(trace_id, 32)
            && !all_zero(trace_id)
            && hex(parent_id, 16)
            && !all_zero(parent_id)
            && hex(flags, 2);
        valid.then(|| Self(value.trim().to_ascii_lowercase()))
    }

    /// A fresh, sampled trace.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let trace: u128 = rng.random_range(1..=u128::MAX);
        let span: u64 = rng.random_range(1..=u64::MAX);
        Self(format!("00-{trace:032x}-{span:016x}-01"))
    }

    /// The incoming header's context, or a new trace when absent or invalid.
    pub fn from_headers_or_new(headers: &HeaderMap) -> Self {
        headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
            .unwrap_or_else(Self::generate)
    }

    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spec_example() {
        let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn rejects_malformed_and_zero_ids() {
        for bad in [
            "",
            "00-abc-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad:?} accepted");
        }
    }

    #[test]
    fn generated_values_parse_back() {
        for _ in 0..100 {
            let tp = TraceParent::generate();
            assert_eq!(TraceParent::parse(tp.as_str()), Some(tp));
        }
    }
}
