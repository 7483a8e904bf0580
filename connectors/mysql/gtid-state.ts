/**
 * The GTID state as the stream advances: the set (MySQL) or position (MariaDB) of every transaction
 * before the current point, to put in resume tokens. A transaction's GTID joins it when the
 * transaction ends.
 */
import { formatMariadbGtid, MariadbGtidPosition, MysqlGtidSet } from "./gtid.ts";
import type { MariadbGtid, MysqlGtid } from "./gtid.ts";
import type { Flavor } from "./resume-token.ts";

export class GtidState {
  private readonly mysql: MysqlGtidSet | null;
  private readonly mariadb: MariadbGtidPosition | null;
  private text: string | null = null;
  /** Whether the state is known (from a token, BINLOG_GTID_POS or the file's GTID list). */
  known: boolean;

  constructor(flavor: Flavor, initial: string | null) {
    this.known = initial !== null;
    this.mysql = flavor === "mysql" ? MysqlGtidSet.parse(initial ?? "") : null;
    this.mariadb = flavor === "mariadb" ? MariadbGtidPosition.parse(initial ?? "") : null;
  }

  /** PREVIOUS_GTIDS / GTID_LIST at the start of a file: the state there, when not known already. */
  adoptFileStart(gtids: MysqlGtidSet | readonly MariadbGtid[]): void {
    if (this.known) return;
    if (gtids instanceof MysqlGtidSet) {
      this.mysql?.addAll(gtids);
    } else if (this.mariadb !== null) for (const gtid of gtids) this.mariadb.update(gtid);
    this.known = true;
    this.text = null;
  }

  add(gtid: MysqlGtid | MariadbGtid): void {
    if ("uuid" in gtid) this.mysql?.add(gtid);
    else this.mariadb?.update(gtid);
    this.text = null;
  }

  toString(): string | null {
    if (!this.known) return null;
    this.text ??= (this.mysql ?? this.mariadb)!.toString();
    return this.text;
  }
}

export function gtidText(gtid: MysqlGtid | MariadbGtid): string {
  if ("uuid" in gtid) return gtid.tag === "" ? `${gtid.uuid}:${gtid.gno}` : `${gtid.uuid}:${gtid.tag}:${gtid.gno}`;
  return formatMariadbGtid(gtid);
}
