/**
 * `sluice validate`'s check of personal_data's key files: the same read as the daemon's start
 * (MasterKey.fromFile: readable, 32 bytes as hex or base64), reported at the key that names the file.
 */
import type { SluiceConfig } from "../../config/schema.ts";
import { SluiceError } from "../../connectors/errors.ts";
import { MasterKey } from "./subject-keys.ts";

export interface KeyFileProblem {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

/** The problems of personal_data.master_key_file and previous_master_key_files (paths already resolved from the config file's folder). */
export function masterKeyFileProblems(config: Pick<SluiceConfig, "personal_data">): KeyFileProblem[] {
  const settings = config.personal_data;
  if (settings === undefined) return [];
  const problems: KeyFileProblem[] = [];
  const check = (path: readonly PropertyKey[], file: string) => {
    try {
      MasterKey.fromFile(file);
    } catch (error) {
      if (!(error instanceof SluiceError) || error.code !== "GOVERNANCE_KEY_INVALID") throw error;
      problems.push({ path, message: error.message });
    }
  };
  check(["personal_data", "master_key_file"], settings.master_key_file);
  settings.previous_master_key_files.forEach((file, index) => check(["personal_data", "previous_master_key_files", index], file));
  return problems;
}
