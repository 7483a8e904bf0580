/**
 * What `sluice forget` costs in Elasticsearch per subject by how the subject is found (elasticsearch-sink.ts
 * #subjectFilter): a text subject within the keyword limit (a term on the keyword subfield), one over it (a phrase on
 * the text field, then _source compared), and one over it that makes no words (every document whose subject is over
 * the limit read). One index of ROWS documents, half with short subjects, half with 300-character subjects sharing
 * their words; each erase nulls one document. Times are medians of REPEATS erasures, as ratios to the keyword path.
 * Needs the test services' Elasticsearch (test/services, port 59200).
 *
 *   node bench/es-erase-subject.ts [rows, default 20000] [repeats, default 7]
 */
import { randomBytes } from "node:crypto";
import { Client } from "@elastic/elasticsearch";
import { elasticsearch } from "../test/services/ports.ts";
import { ElasticsearchSink } from "../connectors/elasticsearch/elasticsearch-sink.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../connectors/sinks/test-events.ts";

const ROWS = Number(process.argv[2] ?? 20_000);
const REPEATS = Number(process.argv[3] ?? 7);
const prefix = `sluice_bench_erase_${randomBytes(3).toString("hex")}`;

const short = (i: number) => `cust-${i}`;
const long = (i: number) => `${"customer account reference of the loyalty programme ".repeat(6)}${i}`;
const dashes = (i: number) => "-".repeat(300 + i);

const sink = new ElasticsearchSink(testSinkConfig("elasticsearch", { name: `${prefix}_sink`, nodes: [elasticsearch.url], bulk_bytes: 8 * 2 ** 20, target: `${prefix}_{table}` }), { logger: testLogger() });
const signal = AbortSignal.timeout(600_000);
await sink.open(signal);
const events = new Events(tableSchema(randomTableName("erase"), [["id", "integer"], ["customer", "text"], ["email", "text"]]));
try {
  const subjectOf = (i: number) => (i < REPEATS ? dashes(i) : i % 2 === 0 ? short(i) : long(i));
  for (let start = 0; start < ROWS; start += 5_000) {
    const batch = Array.from({ length: Math.min(5_000, ROWS - start) }, (_, k) => events.insert(BigInt(start + k + 1), { id: start + k, customer: subjectOf(start + k), email: `${start + k}@x.io` }));
    const { failures } = await sink.write(batch, signal);
    if (failures.length > 0) throw new Error(`write failed: ${failures[0]!.error.message}`);
  }
  const time = async (subject: string): Promise<number> => {
    const start = process.hrtime.bigint();
    const rows = await sink.erase({ table: events.schema, subjectColumn: "customer", columns: ["email"], subject }, signal);
    if (rows !== 1) throw new Error(`erased ${rows} rows for one subject`);
    return Number(process.hrtime.bigint() - start) / 1e6;
  };
  // Rows spread over the index: row i (from REPEATS on) has a short subject when even, a long one when odd.
  const first = REPEATS + (REPEATS % 2);
  const step = Math.floor((ROWS - first - 2) / (2 * REPEATS));
  const keyword: number[] = [];
  const phrase: number[] = [];
  const scan: number[] = [];
  // Interleaved, so that drift of the machine hits every path alike.
  for (let r = 0; r < REPEATS; r++) {
    keyword.push(await time(short(first + 2 * r * step)));
    phrase.push(await time(long(first + 2 * r * step + 1)));
    scan.push(await time(dashes(r)));
  }
  const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const base = mid(keyword);
  console.log(`Elasticsearch sink, erase of one subject in an index of ${ROWS} documents (${ROWS / 2} with 300-character subjects), median of ${REPEATS}:`);
  console.log(`  keyword term (subject <= 256 characters):          1.00x (baseline, ${base.toFixed(1)} ms)`);
  console.log(`  phrase + _source check (subject > 256 characters): ${(mid(phrase) / base).toFixed(2)}x`);
  console.log(`  no words (reads every document over the limit):    ${(mid(scan) / base).toFixed(2)}x`);
} finally {
  await sink.close();
  const admin = new Client({ node: elasticsearch.url });
  await admin.indices.delete({ index: `${prefix}_*`, ignore_unavailable: true, expand_wildcards: "all" });
  await admin.close();
}
