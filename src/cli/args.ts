/** Argument parsers and formatting shared by the command line's modules. */
import { InvalidArgumentError } from "commander";

/** A commander parser for integers >= min, with a message naming what was given. */
export function intArg(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got "${v}"`);
    return n;
  };
}

/** "1m5s", "4.2s", or "?" for a non-finite number of seconds. */
export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${Math.round(s % 60)}s` : `${s.toFixed(1)}s`;
}
