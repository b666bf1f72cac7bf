import { RecordBatchFileWriter } from 'apache-arrow';
import { tableFromRows, type ColumnSpec, type TableSpec } from '../sinks/arrow-table';
import type { Prediction } from './predictor';

/**
 * Predictions in the formats other programs read:
 *
 * - JSON lines, one object per input:
 *   `{"input", "class", "confidence", "abstained", "top": [{"class", "probability"}, …],
 *     "probabilities": {"<class>": p, …}, "label"?: "<true class>"}`
 * - an Arrow IPC file, one row per input: `input`, `class` (dictionary-encoded), `class_index`,
 *   `confidence`, `abstained`, `label` (the true class index, null when unknown), and one `p_<class>`
 *   column of calibrated probabilities per class.
 *
 * Probabilities are the calibrated ones, softmax(logits / T).
 */
export function predictionJsonLine(p: Prediction, classNames: readonly string[]): string {
  return JSON.stringify({
    input: p.input,
    class: p.className,
    confidence: p.confidence,
    abstained: p.abstained,
    top: p.top.map((c) => ({ class: c.className, probability: c.probability })),
    probabilities: Object.fromEntries(classNames.map((name, k) => [name, p.probabilities[k]])),
    ...(p.label === undefined ? {} : { label: classNames[p.label] }),
  });
}

/** The predictions as Arrow IPC file bytes. */
export function predictionsArrow(predictions: readonly Prediction[], classNames: readonly string[]): Uint8Array {
  type Row = Record<string, unknown>;
  const columns: ColumnSpec<Row>[] = [
    { column: 'input', field: 'input', type: 'utf8' },
    { column: 'class', field: 'class', type: 'dictionary' },
    { column: 'class_index', field: 'classIndex', type: 'int32' },
    { column: 'confidence', field: 'confidence', type: 'float64' },
    { column: 'abstained', field: 'abstained', type: 'bool' },
    { column: 'label', field: 'label', type: 'int32', nullable: true },
    ...classNames.map((name, k): ColumnSpec<Row> => ({ column: `p_${name}`, field: `p${k}`, type: 'float64' })),
  ];
  const spec: TableSpec<Row> = { table: 'predictions', columns, key: ['input'] };
  const rows = predictions.map((p): Row => {
    const row: Row = { input: p.input, class: p.className, classIndex: p.classIndex, confidence: p.confidence, abstained: p.abstained, label: p.label ?? null };
    classNames.forEach((_, k) => (row[`p${k}`] = p.probabilities[k]));
    return row;
  });
  return RecordBatchFileWriter.writeAll(tableFromRows(spec, rows)).toUint8Array(true);
}
