# The Python of the local Web Push service (scripts/lib/push_service.py),
# which notification's stack tests start: a venv under the cache with
# pinned http_ece + cryptography (decryption, VAPID check) and pywebpush
# (the independent sender that validates the service). Same pattern as
# scripts/lib/ical.sh, its own venv so neither pins the other's packages.
# Sourced, not run; needs common.sh.

PUSH_VENV="$TODO_EVENTS_CACHE/pyenv-push"
PUSH_PACKAGES=(http-ece==1.2.1 cryptography==46.0.3 pywebpush==2.0.3)

# push_python: creates the venv once (and again if a package is missing),
# then prints its interpreter's path.
push_python() {
  local python="$PUSH_VENV/bin/python"
  if ! "$python" -c 'import http_ece, cryptography, pywebpush' >/dev/null 2>&1; then
    python3 -m venv "$PUSH_VENV" >&2
    "$PUSH_VENV/bin/pip" install --quiet --disable-pip-version-check "${PUSH_PACKAGES[@]}" >&2
  fi
  echo "$python"
}
