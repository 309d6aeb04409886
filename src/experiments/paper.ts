/**
 * The paper's numbers (Liao et al., NeurIPS 2024; ../shared/REFERENCE.md), printed beside this project's in
 * results/README.md. SNI: ROUGE-L on the 119 unseen tasks, T5-LM-Base unless noted; FLOPs relative to
 * Tk-Instruct for a task of 100 instances.
 */

/**
 * Main table, keyed by this project's experiment name. The paper's Hypter (12.1 / 10.6) and HINT (33.3 / 41.8)
 * rows are left out on purpose: this project's "Hypter-style" and "HINT-style" rows are TAGI ablations (a
 * rank-32 q/v LoRA generator on a frozen base, without or with instruction concatenation), not those methods
 * (HINT also generates prefixes and finetunes the underlying model; Hypter generates small adapters from a
 * pooled description and finetunes), so their numbers are not comparable.
 */
export const PAPER_SNI: Record<string, { def: number | null; def2pos: number | null; flops: string; model: string }> = {
  "no-ft": { def: 8.8, def2pos: 9.4, flops: "x1.0", model: "T5-LM-Base" },
  "tk-instruct": { def: 35.3, def2pos: 42.1, flops: "x1.0", model: "T5-LM-Base" },
  tagi: { def: 35.3, def2pos: 42.5, flops: "x0.39", model: "T5-LM-Base" },
};

/** Ablation table (T5-LM-XL): SNI Def / SNI Def+2Pos / P3. */
export const PAPER_ABLATION: Record<string, { def: number; def2pos: number; p3: number }> = {
  tagi: { def: 48.4, def2pos: 56.3, p3: 60.6 },
  "tagi-no-pretrain": { def: 47.1, def2pos: 55.6, p3: 58.3 },
  "tagi-no-fusion": { def: 35.1, def2pos: 40.6, p3: 44.2 },
  "tagi-no-ce": { def: 47.6, def2pos: 55.4, p3: 59.8 },
  "tagi-no-kl": { def: 45.7, def2pos: 53.9, p3: 57.3 },
  "tagi-no-ins": { def: 47.5, def2pos: 55.2, p3: 59.4 },
};

/** P3 held-out average accuracy, T5 Base column (the paper's "Zero-shot" is our No FT, "Metatrain" our Tk-Instruct). */
export const PAPER_P3: Record<string, number> = {
  "no-ft": 43.9,
  "tk-instruct": 44.1,
  tagi: 45.6,
};
