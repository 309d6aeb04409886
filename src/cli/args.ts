/** Argument parsers and formatting shared by the command line's modules. */
import { InvalidArgumentError } from "commander";
import type { PromptFormat } from "../text/prompts";

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

/** A commander parser for a comma list of prompt formats ("def", "def+2pos"), each named at most once. */
export function parseFormatList(v: string): PromptFormat[] {
  const list = v.split(",").map((x) => x.trim()).filter(Boolean);
  const bad = list.filter((f) => f !== "def" && f !== "def+2pos");
  if (list.length === 0 || bad.length) throw new InvalidArgumentError(`expected a comma list of def, def+2pos, got "${v}"`);
  if (new Set(list).size !== list.length) throw new InvalidArgumentError(`a format is named twice in "${v}"`);
  return list as PromptFormat[];
}

/** A commander parser for a comma list of non-negative numbers ("0,0.5,1"). */
export function numberListArg(v: string): number[] {
  const list = v.split(",").map((x) => x.trim()).filter(Boolean);
  const bad = list.filter((x) => !Number.isFinite(Number(x)) || Number(x) < 0);
  if (!list.length || bad.length) throw new InvalidArgumentError(`expected a comma list of non-negative numbers, got "${v}"`);
  return list.map(Number);
}
