/**
 * The generated adapter of the PEFT round-trip fixture (test/fixtures/tagi/): a seeded generator on the
 * v1_1 T5 fixture, its output layer perturbed so that B is not zero, applied to fixed instruction ids.
 * Shared by reference/tagi_generate_fixture.ts (which wrote the committed adapter) and the test (which
 * regenerates it and checks that it is unchanged).
 */
import * as tf from "@tensorflow/tfjs-core";
import type { T5Model } from "../../src/model/t5";
import { HYPERNETWORK_DEFAULTS, generateAdapter, initHypernetwork, type HypernetworkConfig } from "../../src/tagi/hypernetwork";
import { encodeInstruction } from "../../src/tagi/instruction-encoder";

export const FIXTURE_HYPERNETWORK: HypernetworkConfig = { ...HYPERNETWORK_DEFAULTS, rank: 4, alpha: 8, hidden: 8, idDim: 4 };
export const FIXTURE_INSTRUCTION = [17, 250, 33, 301, 5, 88, 120, 9, 1];

/** The fixture's generated adapter in PEFT's layout (A [r, in], B [out, r]); the caller disposes. */
export function fixtureAdapter(base: T5Model): Map<string, { A: tf.Tensor; B: tf.Tensor }> {
  const params = initHypernetwork(base.config, FIXTURE_HYPERNETWORK, 5);
  for (const [k, v] of params) if (k.endsWith("fc2.weight")) params.set(k, tf.add(v, tf.randomNormal(v.shape, 0, 0.05, "float32", 77)));
  const ids = tf.tensor2d([FIXTURE_INSTRUCTION], undefined, "int32");
  const mask = tf.onesLike(ids) as tf.Tensor2D;
  const enc = encodeInstruction(base, ids, mask);
  const adapter = generateAdapter(params, base.config, FIXTURE_HYPERNETWORK, enc.pooled);
  const out = new Map<string, { A: tf.Tensor; B: tf.Tensor }>();
  for (const [k, { A, B }] of adapter.modules) out.set(k, tf.tidy(() => ({ A: tf.transpose(tf.squeeze(A, [0])), B: tf.transpose(tf.squeeze(B, [0])) })));
  tf.dispose([ids, mask, enc.states, enc.mask, enc.pooled, ...params.values(), ...[...adapter.modules.values()].flatMap((m) => [m.A, m.B])]);
  return out;
}
