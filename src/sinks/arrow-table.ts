import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  Bool,
  Field,
  Float64,
  Int32,
  makeData,
  Message,
  RecordBatch,
  RecordBatchFileWriter,
  RecordBatchReader,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  Table,
  Utf8,
  vectorFromArray,
  type DataType,
} from 'apache-arrow';
import { writeFileAtomic } from './atomic-file';

/**
 * Typed row tables for the Arrow sinks: a TableSpec maps camelCase row fields to snake_case Arrow columns,
 * and the helpers here turn rows into record batches, IPC stream messages and IPC files, and read them
 * back, also from a stream whose writer was killed mid-write.
 */
export type ColumnType = 'utf8' | 'int32' | 'float64' | 'bool';

export interface ColumnSpec<Row> {
  /** Arrow column name (snake_case). */
  readonly column: string;
  readonly field: keyof Row & string;
  readonly type: ColumnType;
  /** Allows null values (stored as Arrow nulls). */
  readonly nullable?: boolean;
}

export interface TableSpec<Row> {
  /** Stored in the schema metadata as `cigl.table`. */
  readonly table: string;
  readonly columns: readonly ColumnSpec<Row>[];
  /** Fields that identify a row: a resumed segment's row replaces an earlier segment's row with the same key. */
  readonly key: readonly (keyof Row & string)[];
}

export function arrowSchema<Row>(spec: TableSpec<Row>): Schema {
  return new Schema(
    spec.columns.map((c) => new Field(c.column, arrowType(c.type), c.nullable === true)),
    new Map([
      ['cigl.table', spec.table],
      ['cigl.format', '1'],
    ]),
  );
}

export function recordBatchFromRows<Row>(spec: TableSpec<Row>, rows: readonly Row[]): RecordBatch {
  const schema = arrowSchema(spec);
  const children = spec.columns.map((c) => columnData(c, rows));
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: rows.length, nullCount: 0, children }));
}

export function tableFromRows<Row>(spec: TableSpec<Row>, rows: readonly Row[]): Table {
  return new Table(arrowSchema(spec), [recordBatchFromRows(spec, rows)]);
}

/** Rows of a table with the spec's columns; throws naming `source` when columns are missing or mistyped. */
export function rowsFromTable<Row>(spec: TableSpec<Row>, table: Table, source: string): Row[] {
  const columns = spec.columns.map((c) => {
    const vector = table.getChild(c.column);
    if (!vector) throw new Error(`${source}: column "${c.column}" is missing (has ${table.schema.fields.map((f) => f.name).join(', ')})`);
    if (String(vector.type) !== String(arrowType(c.type))) {
      throw new Error(`${source}: column "${c.column}" has type ${vector.type}, expected ${arrowType(c.type)}`);
    }
    // toArray() is fastest but shows nulls as 0; the iterator keeps them.
    return (c.nullable ? [...vector] : vector.toArray()) as ArrayLike<unknown>;
  });
  const rows: Row[] = new Array(table.numRows);
  for (let i = 0; i < table.numRows; i++) {
    const row: Record<string, unknown> = {};
    spec.columns.forEach((c, j) => (row[c.field] = columns[j][i]));
    rows[i] = row as Row;
  }
  return rows;
}

/**
 * IPC stream bytes for `rows`: the schema message (when `withSchema`) and one record batch message,
 * without the end-of-stream marker, so that successive calls can be appended to one growing stream file.
 */
export function streamMessages<Row>(spec: TableSpec<Row>, rows: readonly Row[], withSchema: boolean): Uint8Array {
  const bytes = RecordBatchStreamWriter.writeAll([recordBatchFromRows(spec, rows)]).toUint8Array(true);
  // Layout: schema message, batch message, 8-byte end-of-stream marker. The schema message has no body:
  // 0xFFFFFFFF continuation, int32 metadata length, metadata.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const schemaEnd = 8 + view.getInt32(4, true);
  return bytes.subarray(withSchema ? 0 : schemaEnd, bytes.length - 8);
}

/** Just the schema message: a valid, empty stream. */
export function schemaMessage<Row>(spec: TableSpec<Row>): Uint8Array {
  const bytes = RecordBatchStreamWriter.writeAll([recordBatchFromRows(spec, [])]).toUint8Array(true);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return bytes.subarray(0, 8 + view.getInt32(4, true));
}

/** One complete message of an IPC stream: where it starts, its length in bytes (metadata and body). */
export interface StreamMessageSpan {
  readonly offset: number;
  readonly length: number;
  /** The message type (MessageHeader: 1 schema, 2 dictionary batch, 3 record batch). */
  readonly headerType: number;
}

/**
 * The complete messages at the start of IPC stream bytes, in order, and where they end (including an
 * end-of-stream marker if one is reached). `bytes` must start at a message boundary; a last message cut
 * short (a writer appending, or killed mid-write) is left out. Tailers use the spans to pass messages on
 * whole.
 */
export function streamMessageSpans(bytes: Uint8Array, source: string): { spans: StreamMessageSpan[]; end: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const spans: StreamMessageSpan[] = [];
  let offset = 0;
  while (offset + 8 <= bytes.length) {
    if (view.getUint32(offset, true) !== 0xffffffff) {
      if (offset === 0) throw new Error(`${source}: not an Arrow IPC stream (no continuation marker at byte 0)`);
      break;
    }
    const metadataLength = view.getInt32(offset + 4, true);
    if (metadataLength === 0) return { spans, end: offset + 8 }; // end-of-stream marker
    if (offset + 8 + metadataLength > bytes.length) break;
    let message: Message;
    try {
      message = Message.decode(bytes.subarray(offset + 8, offset + 8 + metadataLength));
    } catch (err) {
      throw new Error(`${source}: corrupt Arrow message at byte ${offset} (${(err as Error).message})`);
    }
    const length = 8 + metadataLength + Number(message.bodyLength);
    if (offset + length > bytes.length) break;
    spans.push({ offset, length, headerType: message.headerType });
    offset += length;
  }
  return { spans, end: offset };
}

/**
 * The longest prefix of an IPC stream made of complete messages. A file a writer is appending to (or was
 * killed while appending to) may end inside a message; any Arrow reader can read this prefix.
 */
export function completeStreamPrefix(bytes: Uint8Array, source: string): Uint8Array {
  return bytes.subarray(0, streamMessageSpans(bytes, source).end);
}

/**
 * Reads an IPC stream, keeping every complete record batch; a last message cut short (the writer is
 * mid-write, or was killed inside a write) is left out and reported as `truncated`.
 */
export function readStreamTolerant(bytes: Uint8Array, source: string): { table: Table; truncated: boolean } {
  const prefix = completeStreamPrefix(bytes, source);
  if (prefix.length === 0) throw new Error(`${source}: no complete Arrow schema message (${bytes.length} bytes)`);
  const reader = RecordBatchReader.from(prefix);
  const batches = [...reader];
  return { table: new Table(reader.schema, batches), truncated: prefix.length < bytes.length };
}

/** Writes a table as an Arrow IPC file (random-access format), atomically. */
export function writeArrowFileAtomic(file: string, table: Table): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, RecordBatchFileWriter.writeAll(table).toUint8Array(true));
}

function arrowType(type: ColumnType): DataType {
  switch (type) {
    case 'utf8':
      return new Utf8();
    case 'int32':
      return new Int32();
    case 'float64':
      return new Float64();
    case 'bool':
      return new Bool();
  }
}

function columnData<Row>(c: ColumnSpec<Row>, rows: readonly Row[]) {
  const values = rows.map((r) => r[c.field]);
  // The builder path writes a validity bitmap; the typed-array path below is faster for dense columns.
  if (c.nullable) return vectorFromArray(values as unknown[], arrowType(c.type)).data[0];
  switch (c.type) {
    case 'int32':
      return makeData({ type: new Int32(), data: Int32Array.from(values as number[]) });
    case 'float64':
      return makeData({ type: new Float64(), data: Float64Array.from(values as number[]) });
    case 'utf8':
      return vectorFromArray(values as string[], new Utf8()).data[0];
    case 'bool':
      return vectorFromArray(values as boolean[], new Bool()).data[0];
  }
}
