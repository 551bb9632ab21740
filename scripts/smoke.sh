#!/usr/bin/env bash
# Smoke test for any todo-events deployment (the local stack or a cluster),
# driven by curl. It checks, printing PASS or FAIL for each step:
#   1. every function that exists is healthy (/healthz and /readyz);
#   2. a task can be created, then found in the list;
#   3. it can be updated, completed and deleted;
#   4. the audit log shows the whole trail (created, updated, completed,
#      deleted), each event exactly once, in sequence order.
# Exits non-zero if any step fails.
#
# Environment (defaults fit the local stack):
#   TASK_API_URL      http://127.0.0.1:8080
#   AUDIT_URL         http://127.0.0.1:8081
#   RECURRING_URL, NOTIFICATION_URL, SYNC_URL
#                     health-checked when set; when unset, the local ports
#                     8082, 8083 and 8090 are checked if something listens.
#   TOKEN             a JWT for the API; without it, `scripts/dev token` makes
#                     one when it exists (the local stack).
#   AUDIT_TOKEN       a JWT allowed to read the audit log; defaults to an admin
#                     token for the same user from `scripts/dev token`, or TOKEN.
#   SMOKE_TIMEOUT     seconds to wait for the audit trail (default 30).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TASK_API_URL="${TASK_API_URL:-http://127.0.0.1:8080}"
AUDIT_URL="${AUDIT_URL:-http://127.0.0.1:8081}"
SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-30}"

failures=0
pass() { printf '\033[32mPASS\033[0m  %s\n' "$*"; }
fail() { printf '\033[31mFAIL\033[0m  %s\n' "$*"; failures=$((failures + 1)); }
skip() { printf 'SKIP  %s\n' "$*"; }
die() { printf '\033[31mFAIL\033[0m  %s\n' "$*"; exit 1; }

if ! command -v jq >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null 2>&1; }
  fi
  command -v jq >/dev/null 2>&1 || die "jq is required: install it (apt-get install jq)"
fi
command -v curl >/dev/null 2>&1 || die "curl is required: install it (apt-get install curl)"

RUN_ID="smoke-$(date +%s)-$$"
if [[ -z ${TOKEN:-} ]]; then
  [[ -x $ROOT/scripts/dev ]] || die "set TOKEN (no scripts/dev here to make one)"
  TOKEN=$("$ROOT/scripts/dev" token "$RUN_ID") || die "scripts/dev token failed"
  AUDIT_TOKEN="${AUDIT_TOKEN:-$("$ROOT/scripts/dev" token "$RUN_ID" --admin)}" || die "scripts/dev token --admin failed"
fi
AUDIT_TOKEN="${AUDIT_TOKEN:-$TOKEN}"

BODY="$(mktemp)"
trap 'rm -f "$BODY"' EXIT

# api METHOD URL [JSON] [TOKEN]: sets STATUS and writes the body to $BODY.
api() {
  local method=$1 url=$2 data=${3:-} token=${4:-$TOKEN} args=()
  args=(-sS -m 10 -o "$BODY" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $token")
  [[ -n $data ]] && args+=(-H 'Content-Type: application/json' --data "$data")
  STATUS=$(curl "${args[@]}" "$url" 2>/dev/null) || STATUS=000
}

# --- 1. health ---------------------------------------------------------------
health() {
  local name=$1 url=$2 h r
  h=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url/healthz") || h=000
  r=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url/readyz") || r=000
  if [[ $h == 200 && $r == 200 ]]; then
    pass "1. $name healthy ($url: /healthz $h, /readyz $r)"
  else
    fail "1. $name unhealthy ($url: /healthz $h, /readyz $r)"
  fi
}
health task-api "$TASK_API_URL"
health audit "$AUDIT_URL"
for spec in recurring:RECURRING_URL:8082 notification:NOTIFICATION_URL:8083 sync-gateway:SYNC_URL:8090; do
  IFS=: read -r name var port <<<"$spec"
  if [[ -n ${!var:-} ]]; then
    health "$name" "${!var}"
  elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    health "$name" "http://127.0.0.1:$port"
  else
    skip "1. $name: $var unset and nothing on 127.0.0.1:$port"
  fi
done
((failures == 0)) || die "functions are not healthy; not going further"

# --- 2. create, then list ----------------------------------------------------
TITLE="smoke test $RUN_ID"
api POST "$TASK_API_URL/api/tasks" "$(jq -nc --arg t "$TITLE" '{title: $t}')"
TASK_ID=$(jq -r '.id // empty' "$BODY" 2>/dev/null)
if [[ $STATUS == 201 || $STATUS == 200 ]] && [[ -n $TASK_ID ]]; then
  pass "2. create: POST /api/tasks -> $STATUS, id $TASK_ID"
else
  die "2. create: POST /api/tasks -> $STATUS: $(head -c 300 "$BODY")"
fi

api GET "$TASK_API_URL/api/tasks"
if [[ $STATUS == 200 ]] && jq -e --arg id "$TASK_ID" '(.items // .) | any(.id == $id)' "$BODY" >/dev/null 2>&1; then
  pass "2. list: GET /api/tasks contains $TASK_ID"
else
  fail "2. list: GET /api/tasks -> $STATUS, $TASK_ID not listed"
fi

# --- 3. update, complete, delete ---------------------------------------------
api PATCH "$TASK_API_URL/api/tasks/$TASK_ID" "$(jq -nc --arg t "$TITLE (edited)" '{title: $t}')"
if [[ $STATUS == 200 ]] && jq -e --arg t "$TITLE (edited)" '.title == $t' "$BODY" >/dev/null 2>&1; then
  pass "3. update: PATCH /api/tasks/$TASK_ID -> 200, title changed"
else
  fail "3. update: PATCH /api/tasks/$TASK_ID -> $STATUS: $(head -c 300 "$BODY")"
fi

api POST "$TASK_API_URL/api/tasks/$TASK_ID/complete"
if [[ $STATUS == 200 ]] && jq -e '.status | ascii_downcase | test("complete|done")' "$BODY" >/dev/null 2>&1; then
  pass "3. complete: POST /api/tasks/$TASK_ID/complete -> 200, status $(jq -r .status "$BODY")"
else
  fail "3. complete: POST /api/tasks/$TASK_ID/complete -> $STATUS: $(head -c 300 "$BODY")"
fi

api DELETE "$TASK_API_URL/api/tasks/$TASK_ID"
if [[ $STATUS == 204 || $STATUS == 200 ]]; then
  api GET "$TASK_API_URL/api/tasks/$TASK_ID"
  if [[ $STATUS == 404 ]]; then
    pass "3. delete: DELETE /api/tasks/$TASK_ID, then GET -> 404"
  else
    fail "3. delete: task still readable after DELETE (GET -> $STATUS)"
  fi
else
  fail "3. delete: DELETE /api/tasks/$TASK_ID -> $STATUS: $(head -c 300 "$BODY")"
fi

# --- 4. the audit trail, once --------------------------------------------------
# audit_items: every audit entry of the task, following next_cursor.
audit_items() {
  local cursor="" all="[]" url page
  for page in {1..20}; do
    url="$AUDIT_URL/api/audit-logs?task_id=$TASK_ID"
    [[ -n $cursor ]] && url+="&cursor=$(jq -rn --arg c "$cursor" '$c|@uri')"
    api GET "$url" "" "$AUDIT_TOKEN"
    [[ $STATUS == 200 ]] || { echo "HTTP $STATUS (page $page)"; return 1; }
    all=$(jq -c --argjson acc "$all" '$acc + .items' "$BODY") || return 1
    cursor=$(jq -r '.next_cursor // empty' "$BODY")
    [[ -n $cursor ]] || break
  done
  printf '%s\n' "$all"
}

WANT='["created","updated","completed","deleted"]'
deadline=$((SECONDS + SMOKE_TIMEOUT))
verdict=""
while :; do
  if items=$(audit_items); then
    verdict=$(jq -r --argjson want "$WANT" '
      (map(.type | sub("^com\\.todo\\.task\\."; ""))) as $types
      | if (map(.event_id) | unique | length) != length then "duplicate event ids"
        elif ($types | sort) != ($want | sort) then "types \($types | join(","))"
        elif (sort_by(.sequence) | map(.type | sub("^com\\.todo\\.task\\."; ""))) != $want then "out of order: \($types | join(","))"
        else "ok" end' <<<"$items")
  else
    verdict="audit log unreadable: $items"
  fi
  [[ $verdict == ok ]] && break
  ((SECONDS < deadline)) || break
  sleep 1
done
if [[ $verdict == ok ]]; then
  # Give a duplicate delivery a moment to show up, then look again.
  sleep 2
  if items=$(audit_items) && [[ $(jq length <<<"$items") == 4 ]]; then
    pass "4. audit: created, updated, completed, deleted for $TASK_ID, each once, in sequence order"
  else
    fail "4. audit: the trail changed after it was complete: $(jq -c 'map(.type)' <<<"$items" 2>/dev/null)"
  fi
else
  fail "4. audit: trail for $TASK_ID incomplete after ${SMOKE_TIMEOUT}s ($verdict)"
fi

if ((failures == 0)); then
  printf '\033[32msmoke: all steps passed\033[0m\n'
else
  printf '\033[31msmoke: %d step(s) failed\033[0m\n' "$failures"
  exit 1
fi
