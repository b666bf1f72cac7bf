import type { TableSpec } from '../sinks/arrow-table';
import { ArrowLogTail } from './log-tail';

/**
 * The rows of the Arrow logs that live streams are watching, decoded once and shared: every event-stream
 * client of a run reads the same growing list of JSON-encoded rows (by position) instead of decoding
 * the log itself, so a hundred viewers cost one decoder (apache-arrow spends ~0.1 ms per record batch,
 * which a replay of a long log multiplies by every reconnecting client). A log's rows stay in memory
 * while at least one stream holds it.
 */
export interface SharedRows {
  /** The log's rows from position `index` on, as JSON texts, after reading what was appended since. */
  from(index: number): string[];
  /** This stream no longer needs the rows. */
  release(): void;
}

interface Entry {
  readonly tail: ArrowLogTail;
  readonly spec: TableSpec<unknown>;
  readonly rows: string[];
  users: number;
}

export class SharedLogRows {
  private readonly entries = new Map<string, Entry>();

  acquire<Row>(dir: string, base: string, spec: TableSpec<Row>): SharedRows {
    const key = `${dir}\0${base}`;
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { tail: new ArrowLogTail(dir, base), spec: spec as TableSpec<unknown>, rows: [], users: 0 };
      this.entries.set(key, entry);
    }
    const held = entry;
    held.users++;
    let released = false;
    return {
      from: (index) => {
        for (const row of held.tail.readRows(held.spec)) held.rows.push(JSON.stringify(row));
        return held.rows.slice(index);
      },
      release: () => {
        if (released) return;
        released = true;
        if (--held.users === 0) this.entries.delete(key);
      },
    };
  }

  /** Logs held now (for tests and health). */
  get size(): number {
    return this.entries.size;
  }
}
