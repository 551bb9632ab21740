# The browser client (web/) and its browser test: Node.js and npm, the
# pinned npm packages (typescript, playwright-core, and the /docs viewers
# @scalar/api-reference and @asyncapi/react-component: web/package-lock.json),
# the compiled page in web/dist/ (and the /docs pages in web/dist/docs/),
# and Debian's Chromium. Sourced, not run; needs common.sh.
#
# npm's download cache lives under the cache directory, so `npm ci` on a
# fresh clone (CI) installs from it without the network once it is warm.
# Chromium comes from Debian (playwright's own browser download cannot
# reach its host here); playwright-core is pinned to the release built for
# Chromium's major version, which chromium_check_major verifies.

WEB_ROOT="$REPO_ROOT/web"
NPM_CACHE="$TODO_EVENTS_CACHE/npm"
CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
# node_ensure: Node.js (>= 18, for `node --test`) and npm, from Debian when
# the machine has none.
node_ensure() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "installing Node.js and npm from Debian"
    apt_install nodejs npm
  fi
  local major; major=$(node -p 'process.versions.node.split(".")[0]')
  ((major >= 18)) || die "Node.js $major is too old for the web client (need 18 or newer)"
}

# web_build: installs web/'s locked packages (again only when the lock file
# changed), compiles the client into web/dist/, the directory sync-gateway
# serves (WEB_DIR), and builds the /docs pages into web/dist/docs/
# (web/scripts/build-docs.mjs: the viewers' bundles and the OpenAPI and
# AsyncAPI documents).
web_build() {
  node_ensure
  local stamp="$WEB_ROOT/node_modules/.package-lock.json"
  if [[ ! -f $stamp || $WEB_ROOT/package-lock.json -nt $stamp ]]; then
    say "installing web/'s npm packages (npm ci, cache $NPM_CACHE)"
    # --ignore-scripts: nothing web/ uses needs an install step (the viewers
    # are copied as prebuilt bundles), and @scarf/scarf, which the AsyncAPI
    # component brings, would try to report the install home.
    (cd "$WEB_ROOT" && npm ci --ignore-scripts --cache "$NPM_CACHE" --prefer-offline --no-audit --no-fund --loglevel=error) >&2 \
      || die "npm ci in web/ failed"
  fi
  (cd "$WEB_ROOT" && npm run --silent build) >&2 || die "the web client does not compile (npm run build in web/)"
}

# chromium_ensure: Debian's chromium (and a font, which --no-install-recommends
# would leave out), once per machine.
chromium_ensure() {
  if [[ ! -x $CHROMIUM_BIN ]]; then
    say "installing Debian's chromium for the browser test"
    apt_install chromium fonts-liberation
  fi
}

# chromium_check_major: stops with a clear message when Debian's Chromium
# is not the major that the pinned playwright-core was built for (its
# browsers.json names the Chromium it drives: 1.64.x drives 156).
chromium_check_major() {
  local version major want
  version=$("$CHROMIUM_BIN" --version 2>/dev/null) || die "$CHROMIUM_BIN --version failed"
  major=$(sed -E 's/^[^0-9]*([0-9]+)\..*/\1/' <<<"$version")
  want=$(node -p 'require(process.argv[1]).browsers.find((b) => b.name === "chromium").browserVersion.split(".")[0]' \
    "$WEB_ROOT/node_modules/playwright-core/browsers.json") || die "cannot read playwright-core's browsers.json (run web_build first)"
  [[ $major == "$want" ]] || die "$version: Debian moved Chromium to major $major, but web/package.json pins playwright-core $(node -p 'require(process.argv[1]).version' "$WEB_ROOT/node_modules/playwright-core/package.json"), built for Chromium $want; move playwright-core to the release whose browsers.json names Chromium $major"
  say "$version; playwright-core drives Chromium $want"
}
