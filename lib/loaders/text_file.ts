// Reading a whole text file (config.json, an index, tokenizer.json) with the
// loaders' error: a ModelLoadError naming the file, "<what> not found" for a
// missing file, else the system's reason.
import * as fs from 'node:fs';
import { ModelLoadError } from '../errors';

export function readTextFile(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelLoadError(code === 'ENOENT' ? `${what} not found` : `cannot read ${what} (${code ?? (err as Error).message})`, { file, cause: err });
  }
}
