import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  Bool,
  Dictionary,
  Field,
  Float64,
  Int32,
  Int64,
  makeData,
  Message,
  MessageHeader,
  RecordBatch,
  RecordBatchFileWriter,
  RecordBatchReader,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  Table,
  TimestampMillisecond,
  Utf8,
  vectorFromArray,
  type DataType,
  type Vector,
} from 'apache-arrow';
import { writeFileAtomic } from './atomic-file';

/**
 * Typed row tables for the Arrow sinks: a TableSpec maps camelCase row fields to snake_case Arrow columns,
 * and the helpers here turn rows into record batches, IPC stream messages and IPC files, and read them
 * back, also from a stream whose writer was killed mid-write.
 */
export type ColumnType = 'utf8' | 'dictionary' | 'int32' | 'int64' | 'float64' | 'bool' | 'timestamp';

/*
 * How each column type is stored, and what the row field holds:
 * - utf8: Utf8; a string.
 * - dictionary: Dictionary<Int32, Utf8> (the few distinct labels of a column, e.g. phase, metric, run_id,
 *   stored once per record batch; readers see strings: polars a Categorical); a string.
 * - int32 / int64: Int32 / Int64; a JS number (an integer; int64 for counts that may outgrow 2^31, such as
 *   steps).
 * - float64: Float64; a number.
 * - bool: Bool; a boolean.
 * - timestamp: Timestamp<MILLISECOND, "UTC">; a number of milliseconds since the Unix epoch (Date.now()).
 */

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
    // A dictionary column's id is its position, so that every record batch of a growing stream (and the
    // schema message a reader starts from) agrees on it.
    spec.columns.map((c, i) => new Field(c.column, arrowType(c.type, i), c.nullable === true)),
    new Map([
      ['cigl.table', spec.table],
      ['cigl.format', '1'],
    ]),
  );
}

export function recordBatchFromRows<Row>(spec: TableSpec<Row>, rows: readonly Row[]): RecordBatch {
  const schema = arrowSchema(spec);
  const children = spec.columns.map((c, i) => columnData(c, rows, schema.fields[i].type));
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
    if (String(vector.type) !== String(arrowType(c.type, 0))) {
      throw new Error(`${source}: column "${c.column}" has type ${vector.type}, expected ${arrowType(c.type, 0)}`);
    }
    return rowValues(c, vector);
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
 * short (a writer appending, or killed mid-write) is left out, and so are dictionary messages whose record
 * batch is not complete yet: a tailer that passed them on alone would hand the batch over later without
 * the dictionaries it is decoded with. Tailers use the spans to pass messages on whole.
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
  while (spans.length > 0 && spans[spans.length - 1].headerType === MessageHeader.DictionaryBatch) offset = spans.pop()!.offset;
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

function arrowType(type: ColumnType, dictionaryId: number): DataType {
  switch (type) {
    case 'utf8':
      return new Utf8();
    case 'dictionary':
      return new Dictionary(new Utf8(), new Int32(), dictionaryId);
    case 'int32':
      return new Int32();
    case 'int64':
      return new Int64();
    case 'float64':
      return new Float64();
    case 'bool':
      return new Bool();
    case 'timestamp':
      return new TimestampMillisecond('UTC');
  }
}

function columnData<Row>(c: ColumnSpec<Row>, rows: readonly Row[], type: DataType) {
  const values = rows.map((r) => r[c.field]);
  const wide = c.type === 'int64' || c.type === 'timestamp';
  // The builder path writes a validity bitmap; the typed-array paths below are faster for dense columns.
  if (c.nullable) return vectorFromArray((wide ? values.map((v) => (v === null ? null : toBigInt(c, v))) : values) as unknown[], type).data[0];
  switch (c.type) {
    case 'int32':
      return makeData({ type: new Int32(), data: Int32Array.from(values as number[]) });
    case 'int64':
    case 'timestamp':
      return makeData({ type: type as Int64, data: BigInt64Array.from(values, (v) => toBigInt(c, v)) });
    case 'float64':
      return makeData({ type: new Float64(), data: Float64Array.from(values as number[]) });
    case 'utf8':
    case 'dictionary':
      return vectorFromArray(values as string[], type as Utf8).data[0];
    case 'bool':
      return vectorFromArray(values as boolean[], new Bool()).data[0];
  }
}

/** A row's number as an Int64 / timestamp value; a timestamp's fraction of a millisecond is rounded off. */
function toBigInt<Row>(c: ColumnSpec<Row>, value: unknown): bigint {
  const n = c.type === 'timestamp' ? Math.round(value as number) : (value as number);
  if (!Number.isSafeInteger(n)) throw new Error(`column "${c.column}": ${String(value)} is not an integer (${c.type})`);
  return BigInt(n);
}

/** A column's values as the row fields hold them: 64-bit integers and timestamps as numbers. */
function rowValues<Row>(c: ColumnSpec<Row>, vector: Vector): ArrayLike<unknown> {
  if (c.type === 'int64' || c.type === 'timestamp') {
    // Int64 reads as bigint; a timestamp's get() already gives milliseconds as a number.
    return Array.from(vector, (v: unknown) => (v === null ? null : Number(v)));
  }
  // toArray() is fastest but shows nulls as 0; the iterator keeps them.
  return (c.nullable ? [...vector] : vector.toArray()) as ArrayLike<unknown>;
}
