import type * as http from 'node:http';
import { HttpError } from './http-error';

/** Reading JSON requests and writing JSON (and error) responses. */

/** Request bodies larger than this are refused (413): a run request is a small config. */
export const MAX_BODY_BYTES = 1 << 20;

/** `compact`: no indentation, for the large answers the dashboard polls. */
export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}, options: { compact?: boolean } = {}): void {
  const text = (options.compact ? JSON.stringify(body) : JSON.stringify(body, null, 2)) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/** `{ error, problems? }` with the error's status. */
export function sendError(res: http.ServerResponse, err: HttpError, headers: http.OutgoingHttpHeaders = {}): void {
  sendJson(res, err.status, { error: err.message, ...(err.problems.length > 0 ? { problems: err.problems } : {}) }, headers);
}

/** The request body parsed as JSON; 415 for another content type, 413 when too large, 400 when malformed. */
export async function readJsonBody(req: http.IncomingMessage): Promise<unknown> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') throw new HttpError(415, `the request body must be application/json, got ${JSON.stringify(type || 'nothing')}`);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `the request body is not valid JSON: ${(err as Error).message}`);
  }
}
