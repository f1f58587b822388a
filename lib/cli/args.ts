// A small argument parser for the CLI: `command --flag value --switch`.

export interface ParsedArgs {
  command: string | undefined;
  flags: Map<string, string | true>;
  positional: string[];
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function parseArgs(argv: string[]): ParsedArgs {
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) {
        flags.set(a.slice(2, eq), a.slice(eq + 1));
      } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
        flags.set(a.slice(2), argv[++i]);
      } else {
        flags.set(a.slice(2), true);
      }
    } else if (command === undefined) {
      command = a;
    } else {
      positional.push(a);
    }
  }
  return { command, flags, positional };
}

export function stringFlag(p: ParsedArgs, name: string, required: true): string;
export function stringFlag(p: ParsedArgs, name: string, required?: false): string | undefined;
export function stringFlag(p: ParsedArgs, name: string, required = false): string | undefined {
  const v = p.flags.get(name);
  if (v === undefined) {
    if (required) throw new UsageError(`missing --${name}`);
    return undefined;
  }
  if (v === true) throw new UsageError(`--${name} needs a value`);
  return v;
}

export function numberFlag(p: ParsedArgs, name: string): number | undefined {
  const v = stringFlag(p, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
  return n;
}

/** A switch: absent -> false; `--name`, `--name=true` -> true; `--name=false` -> false. */
export function booleanFlag(p: ParsedArgs, name: string): boolean {
  const v = p.flags.get(name);
  if (v === undefined || v === 'false') return false;
  if (v === true || v === 'true') return true;
  throw new UsageError(`--${name} takes no value, got '${v}'`);
}
