/**
 * An error that answers an HTTP request: its status, a message for the client and, for a bad field,
 * the field's path (e.g. `sparse.density`) so that clients can point at it.
 */
export interface FieldProblem {
  readonly field: string;
  readonly message: string;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problems: readonly FieldProblem[] = [],
  ) {
    super(message);
    this.name = 'HttpError';
  }
}
