# The AsyncAPI parser (@asyncapi/parser from npm, exact version in
# scripts/asyncapi/package-lock.json) that scripts/asyncapi/check.mjs uses
# to validate shared/contracts/asyncapi.json. Installed with `npm ci` into
# a directory under the cache, keyed by the lock file, so the clone stays
# clean and a rerun installs nothing. Sourced, not run; needs common.sh.

ASYNCAPI_TOOLS_SRC="$REPO_ROOT/scripts/asyncapi"

# asyncapi_tools: installs the locked packages once (again when the lock
# changes), then prints the directory whose node_modules holds them.
asyncapi_tools() {
  command -v npm >/dev/null || die "npm is needed for the AsyncAPI check (Debian: apt-get install nodejs npm)"
  local lock_hash dir
  lock_hash=$(sha256sum "$ASYNCAPI_TOOLS_SRC/package-lock.json" | cut -c1-16)
  dir="$TODO_EVENTS_CACHE/asyncapi-tools/$lock_hash"
  if [[ ! -f $dir/.installed ]]; then
    mkdir -p "$dir"
    cp "$ASYNCAPI_TOOLS_SRC/package.json" "$ASYNCAPI_TOOLS_SRC/package-lock.json" "$dir/"
    # --ignore-scripts: no package here needs a build step, and one of them
    # (@scarf/scarf) would otherwise try to report the install home.
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --cache "$TODO_EVENTS_CACHE/npm" >&2)
    touch "$dir/.installed"
  fi
  echo "$dir"
}
