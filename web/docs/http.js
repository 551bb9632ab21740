// The HTTP API page: Scalar's standalone bundle (vendor/, copied from
// node_modules by scripts/build-docs.mjs) renders openapi.json.
//
// The bundle carries zod 4, which probes `new Function("")` once to decide
// whether to compile its validators; the gateway's policy for this page has
// no 'unsafe-eval', so the probe would log a CSP violation. zod reads its
// global configuration from globalThis.__zod_globalConfig (as the bundle
// shows: `globalThis.__zod_globalConfig ??= {}`), and `jitless: true`
// (zod's documented `z.config({ jitless: true })`) skips the probe; it must
// be set before the bundle runs, hence the script is added from here.
globalThis.__zod_globalConfig = { ...globalThis.__zod_globalConfig, jitless: true };

const target = document.getElementById("http-api");
const script = document.createElement("script");
script.src = "vendor/scalar-api-reference.js";
script.addEventListener("load", () => {
  globalThis.Scalar.createApiReference(target, {
    url: target.dataset.document,
    // Nothing from another host: system fonts instead of Scalar's font
    // CDN, no usage reports, no MCP or agent panels (they call Scalar's
    // services), no developer toolbar.
    withDefaultFonts: false,
    telemetry: false,
    mcp: { disabled: true },
    agent: { disabled: true },
    showDeveloperTools: "never",
    // No request proxy: the key the standalone bundle reads is `proxyUrl`
    // (its config schema: `proxyUrl:w(S(),{typeComment:\`URL to a request
    // proxy for the API client\`})`, optional, no default, in
    // node_modules/@scalar/api-reference/dist/browser/standalone.js,
    // 1.72.1). Left undefined, the client falls back to
    // https://proxy.scalar.com in its `web` layout (`Qx=(e,t)=>e===void
    // 0?wHe(t):e`, `wHe=e=>e==='web'?'https://proxy.scalar.com':null`),
    // which would carry a cross-origin request, Authorization included,
    // through Scalar's service. An empty string is "no proxy": `xb`, which
    // rewrites a request's URL, returns it unchanged for a falsy proxy.
    proxyUrl: "",
    // No "Open API Client" link: it opens Scalar's hosted client at
    // client.scalar.com with this document's URL in the query string.
    hideClientButton: true,
    showOperationId: true,
    defaultOpenAllTags: true,
    documentDownloadType: "json",
    hideDarkModeToggle: true,
    forceDarkModeState: "light",
  });
});
document.head.append(script);
