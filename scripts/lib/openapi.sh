# The Python that validates the functions' OpenAPI documents
# (functions/*/openapi.json) with openapi-spec-validator, an outside
# validator of the OpenAPI 3.1 specification and its JSON Schema dialect:
# a venv under the cache with the pinned package from PyPI. Same pattern as
# scripts/lib/ical.sh. Sourced, not run; needs common.sh.

OPENAPI_VENV="$TODO_EVENTS_CACHE/pyenv-openapi"
OPENAPI_PACKAGES=(openapi-spec-validator==0.9.0)

# openapi_python: creates the venv once (and again if the package is
# missing), then prints its interpreter's path.
openapi_python() {
  local python="$OPENAPI_VENV/bin/python"
  if ! "$python" -c 'import openapi_spec_validator' >/dev/null 2>&1; then
    python3 -m venv "$OPENAPI_VENV" >&2
    "$OPENAPI_VENV/bin/pip" install --quiet --disable-pip-version-check "${OPENAPI_PACKAGES[@]}" >&2
  fi
  echo "$python"
}
