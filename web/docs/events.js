// The events page: the AsyncAPI React component's standalone bundle
// (vendor/, copied from node_modules by scripts/build-docs.mjs) parses and
// renders asyncapi.json, the document with its payload schemas inlined.
const target = document.getElementById("asyncapi");
fetch(target.dataset.document)
  .then((response) => {
    if (!response.ok) throw new Error(`${target.dataset.document}: HTTP ${response.status}`);
    return response.text();
  })
  .then((schema) => {
    globalThis.AsyncApiStandalone.render(
      { schema, config: { show: { sidebar: true, errors: true }, sidebar: { showOperations: "byDefault" } } },
      target,
    );
  })
  .catch((error) => {
    target.textContent = `The AsyncAPI document could not be shown: ${error.message}`;
  });
