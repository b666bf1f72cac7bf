import * as fs from 'node:fs';
import { MessageHeader, RecordBatchReader, Table } from 'apache-arrow';
import { segmentFiles } from '../sinks/arrow-log';
import { rowsFromTable, streamMessageSpans, type TableSpec } from '../sinks/arrow-table';

/**
 * Follows a streamed Arrow log (`metrics.arrows`, then `metrics-1.arrows`, ... after resumes) as it
 * grows: each read returns the complete record-batch messages appended since the last read, in log
 * order, leaving out every segment's schema message (all segments share one schema) and any message the
 * writer is still in the middle of. Concatenated after one schema message, the messages form one valid
 * IPC stream, so they can be passed on byte for byte or decoded to rows.
 *
 * A newer segment only appears after the writer of the older one is gone (a resumed run), so reading
 * the segments in order, each from where the last read stopped, never reorders rows.
 */
export class ArrowLogTail {
  /** Bytes consumed per segment file, by index. */
  private readonly offsets: number[] = [];
  private schema?: Uint8Array;

  constructor(
    readonly dir: string,
    readonly base: string,
  ) {}

  /** The first segment's schema message, once a segment has been read. */
  get schemaMessage(): Uint8Array | undefined {
    return this.schema;
  }

  /** New complete record-batch (and dictionary) messages, as copies. */
  readMessages(): Uint8Array[] {
    const messages: Uint8Array[] = [];
    segmentFiles(this.dir, this.base).forEach((file, index) => {
      const from = this.offsets[index] ?? 0;
      const bytes = readFrom(file, from);
      if (bytes.length === 0) return;
      const { spans, end } = streamMessageSpans(bytes, `${file} at byte ${from}`);
      for (const span of spans) {
        const message = bytes.slice(span.offset, span.offset + span.length);
        if (span.headerType === MessageHeader.Schema) this.schema ??= message;
        else messages.push(message);
      }
      this.offsets[index] = from + end;
    });
    return messages;
  }

  /** New rows, decoded (see readMessages). */
  readRows<Row>(spec: TableSpec<Row>): Row[] {
    const messages = this.readMessages();
    if (messages.length === 0 || !this.schema) return [];
    const reader = RecordBatchReader.from(Buffer.concat([this.schema, ...messages]));
    return rowsFromTable(spec, new Table(reader.schema, [...reader]), `${this.dir}/${this.base}`);
  }
}

/** The bytes of `file` from `offset` to its current end (nothing when it is missing or has not grown). */
function readFrom(file: string, offset: number): Uint8Array {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Uint8Array(0);
    throw err;
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size <= offset) return new Uint8Array(0);
    const bytes = Buffer.allocUnsafe(size - offset);
    let read = 0;
    while (read < bytes.length) {
      const n = fs.readSync(fd, bytes, read, bytes.length - read, offset + read);
      if (n === 0) break;
      read += n;
    }
    return bytes.subarray(0, read);
  } finally {
    fs.closeSync(fd);
  }
}
