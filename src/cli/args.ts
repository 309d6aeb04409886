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
  if (s < 60) return `${s.toFixed(1)}s`;
  const whole = Math.round(s); // round first: 119.6 s is 2m0s, not 1m60s
  return `${Math.floor(whole / 60)}m${whole % 60}s`;
}
