/**
 * Renders docs/config-reference.md from the config schema, so the defaults are documented in
 * exactly one place. `node config/reference.ts --write` updates the page; a test fails when it is stale.
 */
import { writeFileSync } from "node:fs";
import { configSchema, SECRET_KEYS } from "./schema.ts";
import { documentKeys } from "./schema-walk.ts";

function showDefault(value: unknown): string {
  if (value === undefined) return "";
  return `\`${JSON.stringify(value)}\``;
}

export function renderConfigReference(): string {
  const rows = documentKeys(configSchema).map((key) => {
    const required = key.required ? "**required**" : showDefault(key.default) || "—";
    return `| \`${key.path}\` | ${key.type} | ${required} | ${key.description.replace(/\|/g, "\\|")} |`;
  });
  return `# Configuration reference

<!-- Generated from config/schema.ts by \`npm run docs:config\`. Do not edit by hand. -->

A Sluice deployment is one YAML file, checked with \`sluice validate -c FILE\`. Examples:
[minimal](../config/examples/minimal.yaml) and [every option](../config/examples/full.yaml).

- **Environment variables**: \`\${NAME}\` is replaced by the variable's value anywhere in a value;
  \`\${NAME:-default}\` gives a default for an unset or empty variable; \`$\${\` writes a literal \`\${\`.
  An unquoted value that is only a reference takes the YAML type of its value (\`port: \${PGPORT}\` is a number).
  An unset variable without a default is an error.
- **Secrets from files**: any ${SECRET_KEYS.map((k) => `\`${k}\``).join(", ")} may instead be written as
  \`<key>_file: PATH\`; the file's contents (one trailing newline removed) become the value. A relative
  path is read from the config file's folder. Giving both is an error.
- **Durations** are written \`500ms\`, \`5s\`, \`2m\`, \`1h\`, \`7d\` (or a number of milliseconds);
  **sizes** \`512KiB\`, \`64MiB\`, \`1GB\` (or a number of bytes). Defaults below are shown in
  milliseconds and bytes.
- Unknown keys are errors. Every problem is reported at once, each with its file, line, column
  and key path, and a suggestion for a misspelt key or value.
- A \`(kind: x)\` in a path means the keys apply when that section's \`kind\` is \`x\`; \`[]\` means
  each item of a list.

| key | type | default | meaning |
| --- | --- | --- | --- |
${rows.join("\n")}
`;
}

if (process.argv.includes("--write")) {
  writeFileSync(new URL("../docs/config-reference.md", import.meta.url), renderConfigReference());
}
