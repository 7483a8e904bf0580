/**
 * Checkpoints as stored by the topic logs: JSON with the bigint position fields as decimal
 * strings, so they round-trip exactly (JSON numbers lose precision beyond 2^53).
 */
import type { Checkpoint, Position } from "../contracts.ts";
import { SluiceError } from "../errors.ts";

interface StoredCheckpoint {
  source: string;
  commit: string;
  change: string;
  resume?: string;
}

export function encodeCheckpoint(checkpoint: Checkpoint): string {
  const stored: StoredCheckpoint = {
    source: checkpoint.source,
    commit: checkpoint.position.commit.toString(),
    change: checkpoint.position.change.toString(),
  };
  if (checkpoint.position.resume !== undefined) stored.resume = checkpoint.position.resume;
  return JSON.stringify(stored);
}

const INTEGER = /^-?\d+$/;

export function decodeCheckpoint(text: string, where: string): Checkpoint {
  let stored: Partial<StoredCheckpoint>;
  try {
    stored = JSON.parse(text) as Partial<StoredCheckpoint>;
  } catch (error) {
    throw corrupt(where, text, error);
  }
  const { source, commit, change, resume } = stored ?? {};
  if (typeof source !== "string" || typeof commit !== "string" || typeof change !== "string" || !INTEGER.test(commit) || !INTEGER.test(change)) {
    throw corrupt(where, text);
  }
  if (resume !== undefined && typeof resume !== "string") throw corrupt(where, text);
  const position: Position = resume === undefined ? { commit: BigInt(commit), change: BigInt(change) } : { commit: BigInt(commit), change: BigInt(change), resume };
  return { source, position };
}

function corrupt(where: string, text: string, cause?: unknown): SluiceError {
  return new SluiceError(`stored checkpoint in ${where} is not a valid checkpoint: ${text.slice(0, 200)}`, {
    code: "CHECKPOINT_CORRUPT",
    context: { component: "topics", where },
    cause,
  });
}
