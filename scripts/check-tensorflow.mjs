// Checks that the native TensorFlow backend (tfjs-node) loads and computes: the backend initialises, and a
// matMul and its gradient agree with values worked out by hand. Exit 0 and one line when it works; exit 1
// with the reason otherwise. Used by scripts/setup-tensorflow.sh and the test runner.
//   node scripts/check-tensorflow.mjs [@tensorflow/tfjs-node | @tensorflow/tfjs-node-gpu] [TENSORFLOW_VERSION]
// With a version, a binding linked against another TensorFlow is an error too.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const name = process.argv[2] ?? "@tensorflow/tfjs-node";
const wantVersion = process.argv[3];
process.env.TF_CPP_MIN_LOG_LEVEL ??= "2";
try {
  const pkg = require(`${name}/package.json`);
  if (pkg.name !== name) throw new Error(`node_modules/${name} is ${pkg.name}, not the real package`);
  const tf = require(name);
  await tf.setBackend("tensorflow");
  await tf.ready();
  if (tf.getBackend() !== "tensorflow") throw new Error(`backend is ${tf.getBackend()}`);
  const a = tf.tensor2d([1, 2, 3, 4], [2, 2]);
  const b = tf.tensor2d([5, 6, 7, 8], [2, 2]);
  const c = Array.from(tf.matMul(a, b).dataSync());
  // d/da sum(a @ b) = ones @ b^T: every row is the row sums of b
  const g = Array.from(tf.grad((x) => tf.sum(tf.matMul(x, b)))(a).dataSync());
  const want = [19, 22, 43, 50];
  const wantG = [11, 15, 11, 15];
  if (c.some((v, i) => v !== want[i]) || g.some((v, i) => v !== wantG[i])) throw new Error(`wrong values: matMul ${c}, gradient ${g}`);
  // tf.round on int32 returned zeros from TensorFlow 2.17 (tensorflow/tensorflow#74789): the pinned build must not
  const r = Array.from(tf.round(tf.tensor1d([3, -2], "int32")).dataSync());
  if (r[0] !== 3 || r[1] !== -2) throw new Error(`tf.round on int32 gives ${r} (a TensorFlow build with tensorflow/tensorflow#74789)`);
  const version = tf.backend().binding?.TF_Version;
  if (wantVersion && version !== wantVersion) throw new Error(`the binding runs TensorFlow ${version}, not the pinned ${wantVersion}`);
  console.log(`[tensorflow backend] works: ${name} ${pkg.version} on TensorFlow ${tf.backend().binding?.TF_Version ?? "(version not exposed)"}`);
  process.exit(0);
} catch (e) {
  console.error(`[tensorflow backend] does not work: ${e.message.split("\n")[0]}`);
  process.exit(1);
}
