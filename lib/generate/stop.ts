// Streaming stop strings: text arrives in chunks; the matcher emits it as soon
// as it cannot be part of a stop string, holds back any tail that could still
// become one, and on a match emits the text before the earliest match only
// (the stop string itself is never emitted).

export interface StopResult {
  /** Text that is final (may be ''). */
  emit: string;
  /** A stop string was found: `emit` is the text before it, and the stream is over. */
  stopped: boolean;
  /** The stop string that matched, when stopped. */
  stop?: string;
}

export class StopMatcher {
  private readonly stops: string[];
  private held = '';
  private done = false;

  constructor(stops: readonly string[]) {
    if (!Array.isArray(stops)) throw new TypeError('stop must be an array of strings');
    stops.forEach((s, i) => {
      if (typeof s !== 'string' || s.length === 0) throw new RangeError(`stop[${i}] must be a non-empty string, got ${JSON.stringify(s)}`);
    });
    this.stops = [...stops];
  }

  /** True once a stop string was found. */
  get stopped(): boolean {
    return this.done;
  }

  /** Feeds a chunk of text. After a stop, further chunks are swallowed. */
  push(text: string): StopResult {
    if (this.done) return { emit: '', stopped: true };
    if (this.stops.length === 0) return { emit: text, stopped: false };
    const buf = this.held + text;
    // earliest match; at the same position, the longest stop string
    let at = -1, which = '';
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at || (i === at && s.length > which.length))) { at = i; which = s; }
    }
    if (at >= 0) {
      this.done = true;
      this.held = '';
      return { emit: buf.slice(0, at), stopped: true, stop: which };
    }
    // hold the longest suffix of buf that is a proper prefix of some stop string
    let keep = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > keep; n--) {
        if (buf.endsWith(s.slice(0, n))) { keep = n; break; }
      }
    }
    this.held = buf.slice(buf.length - keep);
    return { emit: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** The end of the stream: returns the held-back text (it never completed a stop string). */
  flush(): string {
    const h = this.held;
    this.held = '';
    return this.done ? '' : h;
  }
}
