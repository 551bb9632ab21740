//! `If-Match` (RFC 9110 §13.1.1) over a task's sequence.
//!
//! A task's ETag is its sequence as a strong tag (`"3"`). The header is
//! `*` or a comma-separated list of entity tags, possibly over several
//! header lines. The condition holds when the task exists (`*`) or when
//! one listed tag matches the task's ETag by the strong comparison
//! (§8.8.3.2): both tags strong and the same characters. So a weak tag
//! (`W/"3"`) never matches, nor does `"03"`, nor a tag this API never
//! issued; a list of only such tags is a precondition that fails (412).
//! A value that is not a list of entity tags is a 400.

use std::future::Future;

use axum::http::{HeaderMap, header};
use task_domain::RepoError;

use crate::error::ApiError;

/// What the client asked of the task's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No `If-Match`, or `*`: any existing task.
    Any,
    /// The sequences named by strong tags; empty when no tag can match.
    OneOf(Vec<i64>),
}

/// A sequence no task has (`CHECK (sequence >= 1)` in the task domain's V1
/// migration, and it only grows): what an empty
/// list is checked against, so a missing task is still a 404 (as without
/// the header) and an existing one a 412.
const NO_SEQUENCE: i64 = i64::MIN;

impl IfMatch {
    /// Reads every `If-Match` line of the request.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut lines = headers.get_all(header::IF_MATCH).iter().peekable();
        if lines.peek().is_none() {
            return Ok(IfMatch::Any);
        }
        let mut members = Vec::new();
        for line in lines {
            let text = line
                .to_str()
                .map_err(|_| ApiError::bad_header("If-Match is not ASCII"))?;
            members.extend(parse_members(text)?);
        }
        match members.as_slice() {
            [] => Err(bad_value()),
            [Member::Any] => Ok(IfMatch::Any),
            _ if members.contains(&Member::Any) => Err(ApiError::bad_header(
                "If-Match is either * or a list of entity tags, not both",
            )),
            _ => Ok(IfMatch::OneOf(
                members.iter().filter_map(Member::sequence).collect(),
            )),
        }
    }

    /// Whether a task at `sequence` meets the condition (for reads; a
    /// change is checked under the row lock by [`IfMatch::guard`]).
    pub fn admits(&self, sequence: i64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::OneOf(listed) => listed.contains(&sequence),
        }
    }

    /// Runs one guarded change. The repository checks one expected
    /// sequence under the task's row lock; for a list, a mismatch that
    /// names another listed sequence is tried again with that one, so the
    /// change applies exactly when the task, locked, is at a listed
    /// sequence. Each retry follows a concurrent change, so the attempts
    /// are bounded by the list's length.
    pub async fn guard<T, F, Fut>(&self, mut change: F) -> Result<T, RepoError>
    where
        F: FnMut(Option<i64>) -> Fut,
        Fut: Future<Output = Result<T, RepoError>>,
    {
        let listed = match self {
            IfMatch::Any => return change(None).await,
            IfMatch::OneOf(listed) => listed,
        };
        let mut expected = listed.first().copied().unwrap_or(NO_SEQUENCE);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match change(Some(expected)).await {
                Err(RepoError::SequenceMismatch { current })
                    if listed.contains(&current) && attempts <= listed.len() =>
                {
                    expected = current;
                }
                other => return other,
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Member<'a> {
    Any,
    Tag { weak: bool, opaque: &'a str },
}

impl Member<'_> {
    /// The sequence a strong tag names, if it is one this API issues
    /// (canonical decimal, as in the ETag).
    fn sequence(&self) -> Option<i64> {
        match self {
            Member::Tag {
                weak: false,
                opaque,
            } => opaque
                .parse::<i64>()
                .ok()
                .filter(|n| n.to_string() == *opaque),
            _ => None,
        }
    }
}

fn bad_value() -> ApiError {
    ApiError::bad_header(
        "If-Match must be * or a list of entity tags, e.g. \"3\" (the task's ETag)",
    )
}

/// Splits one header line into `*` and entity tags. An entity tag is
/// `[W/] DQUOTE *etagc DQUOTE` where etagc is any visible character but
/// DQUOTE (so a comma can sit inside a tag); empty list elements are
/// allowed (RFC 9110 §5.6.1.2).
fn parse_members(text: &str) -> Result<Vec<Member<'_>>, ApiError> {
    let mut members = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Ok(members);
        }
        let (member, after) = if let Some(after) = rest.strip_prefix('*') {
            (Member::Any, after)
        } else {
            let (weak, quoted) = match rest.strip_prefix("W/") {
                Some(quoted) => (true, quoted),
                None => (false, rest),
            };
            let inner = quoted.strip_prefix('"').ok_or_else(bad_value)?;
            let end = inner.find('"').ok_or_else(bad_value)?;
            let opaque = &inner[..end];
            if !opaque
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
            {
                return Err(bad_value());
            }
            (Member::Tag { weak, opaque }, &inner[end + 1..])
        };
        members.push(member);
        // A member ends at a comma or at the end of the line.
        rest = after.trim_start_matches([' ', '\t']);
        if !(rest.is_empty() || rest.starts_with(',')) {
            return Err(bad_value());
        }
    }
}

#[cfg(test)]
#[path = "if_match_tests.rs"]
mod tests;
