/**
 * A checkpoint file opened for reads at given byte positions, what the safetensors and GGUF readers share: opened
 * once with an error naming the path, each read whole (the OS may return less than asked) into a buffer of its
 * own, closed once.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ModelIoError } from './errors';

/** One read call at the most (readSync's length is a 32-bit int). */
const MAX_READ = 1 << 30;

export class PositionedFile {
  private fd: number | null;
  /** The file's size in bytes when opened. */
  readonly size: number;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'r');
    } catch (error) {
      throw new ModelIoError('MODEL_NOT_FOUND', `${path}: cannot open (${(error as Error).message})`);
    }
    try {
      this.size = fstatSync(this.fd).size;
    } catch (error) {
      this.close();
      throw new ModelIoError('MODEL_NOT_FOUND', `${path}: cannot read (${(error as Error).message})`);
    }
  }

  /**
   * `length` bytes from `position`, in a buffer of their own (not Node's shared pool, offset 0: typed views over
   * it are aligned). `cutShort(at)` throws the reader's own error when the file ends at byte `at` first.
   */
  read(position: number, length: number, cutShort: (at: number) => never): Buffer {
    if (this.fd === null) throw new Error(`${this.path}: read after close`);
    const buffer = Buffer.allocUnsafeSlow(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buffer, done, Math.min(length - done, MAX_READ), position + done);
      if (n === 0) cutShort(position + done);
      done += n;
    }
    return buffer;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
