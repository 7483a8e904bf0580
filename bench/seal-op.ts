/**
 * What one seal of personal values costs on one thread (issue 18's floor): node:crypto's AES-256-GCM
 * operation step by step (createCipheriv with a prepared key, setAAD, update, final + getAuthTag), then
 * the seal as capture makes it (subject-keys.ts sealInto: key id, IV, tag, ciphertext into a buffer) and
 * with its text in base64 (writeBase64), and drawing an IV from the pooled CSPRNG block. The values are
 * those of bench/governance.ts's table (two personal columns as one JSON text, 1,000 subjects' keys in
 * turn). Prints CPU µs per operation of this thread, per round.
 *
 *   node bench/seal-op.ts [--ops 200000] [--rounds 3]
 */
import { createCipheriv, randomBytes, randomFillSync } from "node:crypto";
import { parseArgs } from "node:util";
import { preparedKey, sealPrepared, writeBase64 } from "../daemon/governance/subject-keys.ts";

const { values: args } = parseArgs({ options: { ops: { type: "string", default: "200000" }, rounds: { type: "string", default: "3" } } });
const OPS = Number(args.ops);
const SUBJECTS = 1_000;

const keys = Array.from({ length: SUBJECTS }, () => preparedKey(randomBytes(32)));
const aads = Array.from({ length: SUBJECTS }, (_, s) => Buffer.from(`bench.items\u0000${s}`));
const plains = Array.from({ length: SUBJECTS }, (_, s) => JSON.stringify({ name: `name ${100_000 + s}`, email: `user${100_000 + s}@example.com` }));
const iv = randomBytes(12);
const payload = Buffer.allocUnsafeSlow(4_096);
const text = Buffer.allocUnsafeSlow(4_096);
const ivPool = Buffer.alloc(12 * 1_024);

const cipherOf = (i: number) => createCipheriv("aes-256-gcm", keys[i % SUBJECTS]!.key, iv);
const steps: [string, (i: number) => void][] = [
  ["createCipheriv (prepared key)", (i) => void cipherOf(i)],
  ["+ setAAD", (i) => void cipherOf(i).setAAD(aads[i % SUBJECTS]!)],
  [
    "+ update",
    (i) => {
      const cipher = cipherOf(i);
      cipher.setAAD(aads[i % SUBJECTS]!);
      cipher.update(plains[i % SUBJECTS]!, "utf8");
    },
  ],
  [
    "+ final + getAuthTag (the whole operation)",
    (i) => {
      const cipher = cipherOf(i);
      cipher.setAAD(aads[i % SUBJECTS]!);
      cipher.update(plains[i % SUBJECTS]!, "utf8");
      cipher.final();
      cipher.getAuthTag();
    },
  ],
  ["sealPrepared (capture's seal: id, IV, tag, ciphertext)", (i) => void sealPrepared(plains[i % SUBJECTS]!, keys[i % SUBJECTS]!, aads[i % SUBJECTS]!, payload, 0)],
  [
    "sealPrepared + writeBase64 (the seal worker's text)",
    (i) => void writeBase64(payload, 0, sealPrepared(plains[i % SUBJECTS]!, keys[i % SUBJECTS]!, aads[i % SUBJECTS]!, payload, 0), text, 0),
  ],
  ["an IV from the CSPRNG, drawn 1,024 at a time", (i) => (i % 1_024 === 0 ? void randomFillSync(ivPool) : undefined)],
];

function cpuMicros(): number {
  const used = process.threadCpuUsage();
  return used.user + used.system;
}

for (const [, step] of steps) for (let i = 0; i < 20_000; i++) step(i);
for (let round = 1; round <= Number(args.rounds); round++) {
  for (const [name, step] of steps) {
    const start = cpuMicros();
    for (let i = 0; i < OPS; i++) step(i);
    process.stdout.write(`round ${round}: ${name}: ${((cpuMicros() - start) / OPS).toFixed(2)} µs CPU per operation\n`);
  }
}
