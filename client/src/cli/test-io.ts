/**
 * Captured standard streams for running CLI commands in-process in tests: stdin from a string or
 * bytes, stdout and stderr collected, each optionally pretending to be a terminal.
 * @internal
 */
import { Readable, Writable } from "node:stream";
import type { CliIo } from "./io.js";
import { runCli } from "./main.js";

/** A writable that keeps what was written. */
export class CapturedOutput extends Writable {
  readonly chunks: Buffer[] = [];
  isTTY: boolean;
  readonly columns = 120;

  constructor(isTTY = false) {
    super();
    this.isTTY = isTTY;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }

  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  get text(): string {
    return this.bytes.toString("utf8");
  }
}

/** How a command is run. */
export interface CaptureOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin?: string | Uint8Array;
  readonly stdoutIsTTY?: boolean;
  readonly stderrIsTTY?: boolean;
  readonly signal?: AbortSignal;
}

/** What a command printed and returned. */
export interface CaptureResult {
  readonly code: number;
  readonly stdout: string;
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
}

/** Runs `tributary <argv>` in-process with captured streams. */
export async function runCaptured(
  argv: readonly string[],
  options: CaptureOptions,
): Promise<CaptureResult> {
  const stdout = new CapturedOutput(options.stdoutIsTTY);
  const stderr = new CapturedOutput(options.stderrIsTTY);
  const input = options.stdin ?? "";
  const io: CliIo = {
    stdin: Readable.from(input.length === 0 ? [] : [Buffer.from(input)]),
    stdout,
    stderr,
    env: options.env,
  };
  const code = await runCli(
    argv,
    io,
    options.signal === undefined ? {} : { signal: options.signal },
  );
  return { code, stdout: stdout.text, stdoutBytes: stdout.bytes, stderr: stderr.text };
}
