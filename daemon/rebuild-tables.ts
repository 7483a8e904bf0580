/**
 * `sluice replay --rebuild --table T`: the topics a rebuild of some of a sink's tables reads. A
 * table is named as `sluice halted` takes it, schema.table or its data topic; one the sink does not
 * write is refused, naming the tables it does.
 */
import type { SluiceConfig, SinkConfig } from "../config/schema.ts";
import { SluiceError } from "../connectors/errors.ts";
import { parseDataTopic, sinkTopics } from "./sink-components.ts";
import { controlTopic } from "../connectors/topics/names.ts";

export const REBUILD_UNKNOWN_TABLE = "REBUILD_UNKNOWN_TABLE";

/** The sink's data topics for `tables` (all of them when none is given), and the control topic when the sink reads it. */
export function rebuildTopics(config: SluiceConfig, sink: SinkConfig, topics: readonly string[], tables: readonly string[] = []): string[] {
  const all = sinkTopics(config, sink, topics);
  if (tables.length === 0) return all;
  const sources = sink.sources ?? config.sources.map((s) => s.name);
  const control = controlTopic(config.name);
  const data = all.filter((topic) => topic !== control);
  const nameOf = (topic: string) => {
    const parsed = parseDataTopic(config.name, sources, topic);
    return parsed === null ? topic : `${parsed.schema}.${parsed.table}`;
  };
  const chosen = new Set<string>();
  for (const table of tables) {
    const matching = data.filter((topic) => topic === table || nameOf(topic) === table);
    if (matching.length === 0) {
      const written = [...new Set(data.map(nameOf))];
      throw new SluiceError(
        `sink "${sink.name}" writes no table "${table}" (give schema.table or its topic; its tables: ${written.length > 0 ? written.join(", ") : "none yet"}). Nothing changed.`,
        { code: REBUILD_UNKNOWN_TABLE, context: { component: "rebuild", sink: sink.name, table } },
      );
    }
    for (const topic of matching) chosen.add(topic);
  }
  return [...data.filter((topic) => chosen.has(topic)), ...(all.includes(control) ? [control] : [])];
}
