/**
 * deploy/k8s/prometheusrule.yaml is deploy/prometheus/rules.yml wrapped in a PrometheusRule for the
 * Prometheus Operator. Regenerate it after changing the rules:
 *
 *   node deploy/k8s/prometheusrule.ts --write
 *
 * test/deploy/manifests.test.ts fails when the file differs from what this renders.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";

export const rulesFile = fileURLToPath(new URL("../prometheus/rules.yml", import.meta.url));
export const prometheusRuleFile = fileURLToPath(new URL("./prometheusrule.yaml", import.meta.url));

const HEADER = `# Generated from deploy/prometheus/rules.yml by \`node deploy/k8s/prometheusrule.ts --write\`: edit
# the rules there, then regenerate (test/deploy/manifests.test.ts checks the two agree). Your
# Prometheus resource's ruleSelector must match these labels. What each alert means and what to
# do: docs/operations.md, section "Alerts".
`;

export function renderPrometheusRule(rulesYaml: string = readFileSync(rulesFile, "utf8")): string {
  const rules = parse(rulesYaml) as { groups: unknown[] };
  const resource = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: { name: "sluice", labels: { "app.kubernetes.io/name": "sluice" } },
    spec: { groups: rules.groups },
  };
  return HEADER + stringify(resource, { lineWidth: 0 });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--write")) {
    writeFileSync(prometheusRuleFile, renderPrometheusRule());
    process.stdout.write(`wrote ${prometheusRuleFile}\n`);
  } else {
    process.stdout.write(renderPrometheusRule());
  }
}
