import type { CliIo, CliOutput } from '../../src/cli/command';

export interface CapturedOutput extends CliOutput {
  text: string;
}

export function captureOutput(isTTY = false, columns = 100): CapturedOutput {
  const out = {
    text: '',
    isTTY,
    columns,
    write(chunk: string) {
      out.text += chunk;
      return true;
    },
  };
  return out;
}

export function captureIo(cwd: string): CliIo & { stdout: CapturedOutput; stderr: CapturedOutput } {
  return { stdout: captureOutput(), stderr: captureOutput(), cwd };
}
