#!/usr/bin/env node
// Generates the client libraries' frame types from clients/protocol.json, the JSON Schema
// the server's test writes from src/protocol.rs:
//   clients/js/src/frames.ts                   TypeScript types
//   clients/python/src/pulseboard/frames.py    TypedDicts
// `node clients/generate.mjs --check` fails when either file is not what the schema says,
// which is how the test command notices a protocol change the clients have not taken.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const schema = JSON.parse(readFileSync(join(here, "protocol.json"), "utf8"));
const defs = schema.definitions;
const refName = (ref) => ref.split("/").pop();
const names = Object.keys(defs).sort();

// ---- TypeScript -------------------------------------------------------------------------

function tsDoc(text, indent = "") {
  if (!text) return "";
  const lines = text.split("\n");
  return `${indent}/**\n${lines.map((l) => `${indent} * ${l}`.trimEnd()).join("\n")}\n${indent} */\n`;
}

function tsType(s, indent = "") {
  if (s.$ref) return refName(s.$ref);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.oneOf) return s.oneOf.map((v) => paren(tsType(v, indent))).join(" | ");
  if (s.allOf) return s.allOf.map((v) => paren(tsType(v, indent))).join(" & ");
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (types.length === 0 && !s.properties) return "unknown";
  const parts = types.map((t) => {
    switch (t) {
      case "null":
        return "null";
      case "string":
        return "string";
      case "integer":
      case "number":
        return "number";
      case "boolean":
        return "boolean";
      case "array":
        return `${paren(tsType(s.items ?? {}, indent))}[]`;
      case "object":
        return tsObject(s, indent);
      default:
        throw new Error(`no TypeScript type for ${t}`);
    }
  });
  return parts.join(" | ");
}

function paren(t) {
  return /[|&]/.test(t) && !t.startsWith("{") ? `(${t})` : t;
}

function tsObject(s, indent) {
  if (!s.properties) {
    return `Record<string, ${tsType(s.additionalProperties ?? {}, indent)}>`;
  }
  const required = new Set(s.required ?? []);
  const inner = indent + "  ";
  const fields = Object.keys(s.properties)
    .sort()
    .map((name) => {
      const p = s.properties[name];
      const key = /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name);
      const optional = required.has(name) ? "" : "?";
      return `${tsDoc(p.description, inner)}${inner}${key}${optional}: ${tsType(p, inner)};`;
    });
  return `{\n${fields.join("\n")}\n${indent}}`;
}

function typescript() {
  let out = `// Generated from clients/protocol.json by clients/generate.mjs; do not edit.\n`;
  out += `// The frames of Pulseboard's socket protocol, version ${schema.protocol}.\n\n`;
  out += `/** The protocol version these types describe. */\nexport const PROTOCOL = ${schema.protocol};\n`;
  for (const name of names) {
    const s = defs[name];
    out += `\n${tsDoc(s.description)}export type ${name} = ${tsType(s)};\n`;
  }
  return out;
}

// ---- Python -----------------------------------------------------------------------------

function pyType(s) {
  if (s.$ref) return `"${refName(s.$ref)}"`;
  if (s.enum) return `Literal[${s.enum.map((v) => JSON.stringify(v)).join(", ")}]`;
  if (s.oneOf) return `Union[${s.oneOf.map(pyType).join(", ")}]`;
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (types.length === 0) return "Any";
  const parts = types.map((t) => {
    switch (t) {
      case "null":
        return "None";
      case "string":
        return "str";
      case "integer":
        return "int";
      case "number":
        return "float";
      case "boolean":
        return "bool";
      case "array":
        return `list[${pyType(s.items ?? {})}]`;
      case "object":
        return s.properties ? "dict[str, Any]" : `dict[str, ${pyType(s.additionalProperties ?? {})}]`;
      default:
        throw new Error(`no Python type for ${t}`);
    }
  });
  return parts.length === 1 ? parts[0] : `Optional[${parts.filter((p) => p !== "None").join(", ")}]`;
}

function pyDoc(text, indent) {
  if (!text) return "";
  return `${indent}"""${text.replaceAll("\\", "\\\\").replaceAll('"""', '\\"\\"\\"')}"""\n`;
}

/** A TypedDict class for an object schema; `bases` are the classes it extends. */
function pyClass(name, s, bases, doc) {
  const required = new Set(s.required ?? []);
  const fields = Object.keys(s.properties ?? {}).sort();
  let out = `\n\nclass ${name}(${bases.join(", ")}):\n`;
  out += pyDoc(doc, "    ");
  const keywords = new Set(["from", "type", "ref"]);
  if (fields.some((f) => keywords.has(f) || !/^[A-Za-z_]\w*$/.test(f))) {
    // Keys that are Python keywords need the functional form.
    const entries = fields.map((f) => {
      const t = pyType(s.properties[f]);
      return `    ${JSON.stringify(f)}: ${required.has(f) ? `Required[${t}]` : `NotRequired[${t}]`},`;
    });
    return `\n\n${name} = TypedDict(\n    ${JSON.stringify(name)},\n    {\n${entries.map((e) => "    " + e).join("\n")}\n    },\n)\n${doc ? `${name}.__doc__ = ${JSON.stringify(doc)}\n` : ""}`;
  }
  if (fields.length === 0 && !doc) out += "    pass\n";
  for (const f of fields) {
    const t = pyType(s.properties[f]);
    out += `    ${f}: ${required.has(f) ? `Required[${t}]` : `NotRequired[${t}]`}\n`;
  }
  return out;
}

function python() {
  let out = `# Generated from clients/protocol.json by clients/generate.mjs; do not edit.\n`;
  out += `"""The frames of Pulseboard's socket protocol, version ${schema.protocol}, as TypedDicts."""\n\n`;
  out += `from __future__ import annotations\n\n`;
  out += `from typing import Any, Literal, NotRequired, Optional, Required, TypedDict, Union\n\n`;
  out += `PROTOCOL = ${schema.protocol}\n`;
  const unions = [];
  for (const name of names) {
    const s = defs[name];
    if (s.properties) {
      out += pyClass(name, s, ["TypedDict", "total=False"], s.description);
    } else if (s.allOf) {
      // A struct flattened into another: one class with both sets of fields.
      const merged = { properties: {}, required: [] };
      for (const part of s.allOf) {
        const p = part.$ref ? defs[refName(part.$ref)] : part;
        Object.assign(merged.properties, p.properties ?? {});
        merged.required.push(...(p.required ?? []));
      }
      out += pyClass(name, merged, ["TypedDict", "total=False"], s.description);
    } else if (s.oneOf && s.oneOf.every((v) => v.allOf || v.properties)) {
      // A tagged union: one class per variant, named after its tag.
      const variants = s.oneOf.map((v) => {
        const merged = { properties: {}, required: [] };
        for (const part of v.allOf ?? [v]) {
          const p = part.$ref ? defs[refName(part.$ref)] : part;
          Object.assign(merged.properties, p.properties ?? {});
          merged.required.push(...(p.required ?? []));
        }
        const tagKey = Object.keys(merged.properties).find((k) => merged.properties[k].enum?.length === 1);
        const tag = merged.properties[tagKey].enum[0];
        const variant = tag.split("_").map((w) => w[0].toUpperCase() + w.slice(1)).join("") + name;
        out += pyClass(variant, merged, ["TypedDict", "total=False"], v.description);
        return variant;
      });
      unions.push(`\n\n${name} = Union[\n${variants.map((v) => `    ${v},`).join("\n")}\n]\n`);
      if (s.description) unions.push(`"""${s.description}"""\n`);
    } else {
      unions.push(`\n\n${name} = ${pyType(s)}\n`);
      if (s.description) unions.push(`"""${s.description}"""\n`);
    }
  }
  return out + unions.join("");
}

// ---- Output -----------------------------------------------------------------------------

const outputs = [
  [join(here, "js/src/frames.ts"), typescript()],
  [join(here, "python/src/pulseboard/frames.py"), python()],
];
const check = process.argv.includes("--check");
let stale = 0;
for (const [path, text] of outputs) {
  if (check) {
    let current = "";
    try {
      current = readFileSync(path, "utf8");
    } catch {}
    if (current !== text) {
      console.error(`${path} is not what clients/protocol.json says: run node clients/generate.mjs`);
      stale += 1;
    }
  } else {
    writeFileSync(path, text);
  }
}
process.exit(stale ? 1 : 0);
