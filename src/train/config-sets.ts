/** Config overrides given as `key.path=value` (the CLI's `--set`, the experiment runner's stage sets). */
/** `--set a.b=value`: value parsed as JSON when it parses (numbers, true, null, arrays), else taken as a string. */
export function applySets(raw: Record<string, unknown>, sets: readonly string[]): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const s of sets) {
    const eq = s.indexOf("=");
    if (eq <= 0) throw new Error(`--set expects key=value (e.g. train.steps=50), got "${s}"`);
    const keys = s.slice(0, eq).split(".");
    const text = s.slice(eq + 1);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = text;
    }
    let node: Record<string, unknown> = out;
    for (const k of keys.slice(0, -1)) {
      const next = node[k];
      if (next === undefined) node[k] = {};
      else if (typeof next !== "object" || next === null || Array.isArray(next)) throw new Error(`--set ${s}: '${k}' is not an object in the config`);
      node = node[k] as Record<string, unknown>;
    }
    node[keys.at(-1)!] = value;
  }
  return out;
}
