// A readable list of the API's endpoints, drawn from /openapi.json (no CDN, no framework).
"use strict";

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function schemaName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.type === "array") return `${schemaName(schema.items)}[]`;
  return schema.type || "";
}

async function start() {
  const box = document.getElementById("endpoints");
  const spec = await (await fetch("/openapi.json")).json();
  box.append(element("h2", "", `${spec.info.title} ${spec.info.version}`));
  box.append(element("p", "muted", spec.info.summary || ""));
  for (const [path, operations] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const block = element("div", "endpoint");
      block.append(element("h3", "", `${method.toUpperCase()} ${path}`));
      block.append(element("p", "", operation.description || operation.summary || ""));
      const parameters = (operation.parameters || []).map(
        (p) => `${p.name} (${p.in}${p.required ? ", required" : ""})`);
      if (parameters.length) block.append(element("p", "muted", `parameters: ${parameters.join(", ")}`));
      const body = operation.requestBody?.content?.["application/json"]?.schema;
      if (body) block.append(element("p", "muted", `body: ${schemaName(body)}`));
      const ok = operation.responses?.["200"]?.content?.["application/json"]?.schema;
      const codes = Object.keys(operation.responses || {}).join(", ");
      block.append(element("p", "muted", `returns: ${schemaName(ok)} (status ${codes})`));
      box.append(block);
    }
  }
}

start();
