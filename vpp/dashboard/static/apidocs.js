// The API reference page (/api/v1/docs): renders the site's OpenAPI document with no
// third-party code. Text goes in through textContent only (descriptions are not HTML).
"use strict";
(function () {
  const root = document.getElementById("apidocs");
  const status = document.getElementById("apidocs-status");
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const refName = (s) => (s && s.$ref ? s.$ref.split("/").pop() : null);
  const typeOf = (s) => {
    if (!s) return "";
    if (s.$ref) return refName(s);
    if (s.anyOf) return s.anyOf.map(typeOf).join(" | ");
    if (s.type === "array") return typeOf(s.items) + "[]";
    return s.format ? `${s.type} (${s.format})` : (s.type || "");
  };
  const table = (head, rows) => {
    const t = el("table");
    const tr = el("tr");
    head.forEach((h) => tr.appendChild(el("th", h)));
    t.appendChild(tr);
    rows.forEach((r) => {
      const row = el("tr");
      r.forEach((c) => row.appendChild(el("td", c)));
      t.appendChild(row);
    });
    return t;
  };

  function operation(method, path, op) {
    const sec = el("section", null, "op");
    sec.id = `${method}-${path}`;
    const h = el("h3");
    h.appendChild(el("span", method.toUpperCase(), `method ${method}`));
    h.appendChild(el("code", ` ${path}`));
    sec.appendChild(h);
    const roles = op["x-roles"];
    sec.appendChild(el("p", roles ? `roles: ${roles.join(", ")}` : "public: no key needed", "roles"));
    if (op.summary) sec.appendChild(el("p", op.summary, "summary"));
    if (op.description) sec.appendChild(el("pre", op.description, "description"));
    const params = op.parameters || [];
    if (params.length) {
      sec.appendChild(table(["parameter", "in", "type", "required", "description"],
        params.map((p) => [p.name, p.in, typeOf(p.schema), p.required ? "yes" : "",
                           p.description || (p.schema && p.schema.description) || ""])));
    }
    const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
    if (body) sec.appendChild(el("p", `request body: ${typeOf(body.schema)}`, "body"));
    const responses = Object.entries(op.responses || {}).map(([code, r]) => {
      const c = r.content && r.content["application/json"];
      return [code, r.description || "", c ? typeOf(c.schema) : ""];
    });
    if (responses.length) sec.appendChild(table(["status", "meaning", "body"], responses));
    return sec;
  }

  function schema(name, s) {
    const sec = el("section", null, "schema");
    sec.id = `schema-${name}`;
    sec.appendChild(el("h3", name));
    const required = new Set(s.required || []);
    const props = Object.entries(s.properties || {});
    if (props.length) {
      sec.appendChild(table(["field", "type", "required", "description"],
        props.map(([k, p]) => [k, typeOf(p), required.has(k) ? "yes" : "", p.description || ""])));
    } else if (s.enum) {
      sec.appendChild(el("p", `one of: ${s.enum.join(", ")}`));
    }
    return sec;
  }

  fetch(root.dataset.spec, { headers: { Accept: "application/json" } })
    .then((r) => { if (!r.ok) throw new Error(`HTTP ${r.status}`); return r.json(); })
    .then((doc) => {
      status.textContent = `${doc.info.title} ${doc.info.version} · OpenAPI ${doc.openapi} · `
        + "keys go in Authorization: Bearer <key> or X-API-Key";
      root.appendChild(el("h2", "Operations"));
      for (const [path, item] of Object.entries(doc.paths || {})) {
        for (const [method, op] of Object.entries(item)) root.appendChild(operation(method, path, op));
      }
      root.appendChild(el("h2", "Schemas"));
      for (const [name, s] of Object.entries((doc.components || {}).schemas || {})) root.appendChild(schema(name, s));
      document.body.dataset.ready = "1";
    })
    .catch((e) => { status.textContent = `could not load the API description: ${e.message}`; });
})();
