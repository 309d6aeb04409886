/**
 * Robustness against hostile or broken input, one block per failure class of the hostile-input review
 * (the template sandbox has its own file, template-sandbox.test.ts):
 *   output folders: a lock naming its owner, stale locks taken over, evaluation folders that cannot collide;
 *   configs: null / 0 / false / "" as a config, every finetune field checked before data loads, a KL
 *     temperature too small to distil;
 *   checkpoints: leftovers of a killed write removed, resume refused on changed data (saying what changed),
 *     an explicit recorded learning-rate override after a non-finite stop, NaN/Inf named on load;
 *   model configs with absurd sizes refused before any allocation;
 *   nothing dropped silently: skipped training tasks printed, invalid UTF-8 named by byte offset.
 */
import { strict as assert } from "node:assert";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { gzipSync } from "node:zlib";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../src/backend";
import { LOCK_NAME, freshRunFolder, lockFolder } from "../src/train/folder-lock";
import { parseFinetuneConfig, parsePretrainHyperConfig } from "../src/tagi/train";
import { parseMetatrainConfig } from "../src/train/metatrain";
import { parsePretrainBaseConfig } from "../src/train/base-model";
import { parseTeachersConfig } from "../src/train/teachers";
import { findCheckpoint, readTrainerState } from "../src/train/checkpoint";
import { parseT5Config } from "../src/model/config";
import { loadT5Checkpoint } from "../src/model/weights";
import { writeSafetensors } from "../src/model/safetensors";
import { loadSniFile, loadTrainTasks } from "../src/data/sni";
import { StrictUtf8Stream, firstInvalidUtf8, readUtf8File } from "../src/data/utf8";
import { cfg, examples, run, tmp } from "./helpers/micro-train";

const ROOT = path.join(__dirname, "..");

/** A live process on this host that holds `dir`'s lock until killed. */
function lockHolder(dir: string): Promise<ChildProcess> {
  const code = `require(${JSON.stringify(path.join(ROOT, "src/train/folder-lock.ts"))}).lockFolder(${JSON.stringify(dir)}, { what: "holder", command: "tagi finetune --out held" }); console.log("locked"); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ["--import", "tsx", "-e", code], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    child.stdout!.once("data", () => resolve(child));
    child.once("exit", (c) => reject(new Error(`lock holder exited ${c}`)));
  });
}

/** The pid of a process that has exited (for stale locks and temporaries). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], { encoding: "utf8" });
  return Number(r.stdout.trim());
}

function captureStderr<T>(fn: () => Promise<T>): Promise<{ value: T; text: string }> {
  const orig = process.stderr.write.bind(process.stderr);
  let text = "";
  (process.stderr as unknown as { write: (s: string) => boolean }).write = (s: string) => {
    text += s;
    return true;
  };
  return fn().then(
    (value) => {
      process.stderr.write = orig;
      return { value, text };
    },
    (e: unknown) => {
      process.stderr.write = orig;
      throw e;
    },
  );
}

describe("hostile input", function () {
  this.timeout(120_000);
  before(async () => {
    await initBackend({ log: false });
  });

  describe("output folders", () => {
    it("a second run into a locked folder is refused, naming the owner; released, it is free again", async () => {
      const dir = tmp();
      const holder = await lockHolder(dir);
      try {
        assert.throws(() => lockFolder(dir, { what: "evaluate" }), (e: Error) => e.message.includes(`pid ${holder.pid}`) && e.message.includes("tagi finetune --out held") && e.message.includes("evaluate:"));
        // the training loop takes the same lock
        await assert.rejects(run(dir, cfg({ steps: 2 })), (e: Error) => e.message.includes(`is in use by pid ${holder.pid}`));
      } finally {
        holder.kill("SIGKILL");
        await new Promise((r) => holder.once("exit", r));
      }
      // the holder was killed: its lock is stale and taken over, said so
      const lines: string[] = [];
      const lock = lockFolder(dir, { what: "evaluate", log: (l) => lines.push(l) });
      assert.equal(lock.tookOver?.pid, holder.pid);
      assert.match(lines.join("\n"), new RegExp(`took over the stale lock of pid ${holder.pid} .*that process is gone`));
      assert.equal(JSON.parse(fs.readFileSync(path.join(dir, LOCK_NAME), "utf8")).pid, process.pid);
      lock.release();
      assert.equal(fs.existsSync(path.join(dir, LOCK_NAME)), false);
    });

    it("the CLI refuses a training run into a folder another process holds", async () => {
      const dir = tmp();
      const holder = await lockHolder(dir);
      try {
        const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", "pretrain-base", "--out", dir, "--backend", "cpu", "--set", "train.steps=1"], { cwd: ROOT, encoding: "utf8" });
        assert.equal(r.status, 1);
        assert.match(r.stderr, new RegExp(`pretrain-base: .* is in use by pid ${holder.pid} on .*tagi finetune --out held`));
      } finally {
        holder.kill("SIGKILL");
      }
    });

    it("a lock with an unreadable body or our own (reused) pid is stale; another host's is refused with its name", () => {
      const dir = tmp();
      fs.writeFileSync(path.join(dir, LOCK_NAME), "");
      lockFolder(dir, { log: () => {} }).release();
      fs.writeFileSync(path.join(dir, LOCK_NAME), JSON.stringify({ pid: process.pid, host: os.hostname(), command: "old", startedAt: "then" }));
      lockFolder(dir, { log: () => {} }).release();
      fs.writeFileSync(path.join(dir, LOCK_NAME), JSON.stringify({ pid: 1, host: "node-17.cluster", command: "tagi evaluate", startedAt: "then" }));
      assert.throws(() => lockFolder(dir), /in use by pid 1 on node-17\.cluster.*cannot be checked from here/);
    });

    it("default evaluation folders started in the same millisecond are distinct, and created exclusively", () => {
      const parent = tmp();
      const now = new Date("2026-11-29T21:00:00.123Z");
      const a = freshRunFolder(parent, "sni", now);
      const b = freshRunFolder(parent, "sni", now);
      assert.notEqual(a, b);
      assert.match(path.basename(a), new RegExp(`^sni-20261129T210000\\.123Z-${process.pid}$`));
      assert.ok(fs.statSync(a).isDirectory() && fs.statSync(b).isDirectory());
    });
  });

  describe("configs", () => {
    const parsers = { "pretrain-base": parsePretrainBaseConfig, metatrain: parseMetatrainConfig, teachers: parseTeachersConfig, "pretrain-hyper": parsePretrainHyperConfig, finetune: parseFinetuneConfig };
    it("null, 0, false and \"\" as a config are errors, for every stage and as a config file", () => {
      for (const [name, parse] of Object.entries(parsers)) {
        for (const v of [null, 0, false, ""]) {
          assert.throws(() => parse(v as unknown as Record<string, unknown>), v === "" ? /config file path is empty/ : /the config must be a JSON object/, `${name} ${JSON.stringify(v)}`);
        }
      }
      const dir = tmp();
      for (const text of ["null", "0", "false", '""', "[]"]) {
        const file = path.join(dir, "c.json");
        fs.writeFileSync(file, text);
        assert.throws(() => parseFinetuneConfig(file), /must be a JSON object/, text);
      }
    });

    it("every finetune field is checked before any data loads, all problems at once", () => {
      const bad = {
        base: "b",
        teacher: "t",
        teachers: "ts",
        maxInputTokens: 0,
        maxTeacherInputTokens: -5,
        maxTargetTokens: -1,
        maxTasks: -2,
        instancesPerTask: -1,
        categories: "Question Answering",
        dataDir: 7,
        tokenizer: "",
        initSeed: -1,
        dev: { fraction: 2, seed: 0.5 },
        trainBase: { layerNorms: "yes", feedForward: false },
      };
      assert.throws(
        () => parseFinetuneConfig(bad),
        (e: Error) =>
          [
            "config.maxInputTokens must be an integer >= 2, got 0",
            "config.maxTeacherInputTokens must be an integer >= 8, got -5",
            "config.maxTargetTokens must be an integer >= 2, got -1",
            "config.maxTasks must be a positive integer or null, got -2",
            "config.instancesPerTask must be a positive integer or null, got -1",
            'config.categories must be a non-empty list of names or null, got "Question Answering"',
            "config.dataDir must be a folder or file path (a non-empty string) or null, got 7",
            'config.tokenizer must be a folder or file path (a non-empty string) or null, got ""',
            "config.initSeed must be an integer >= 0, got -1",
            "config.dev.fraction must be in (0, 1) or null, got 2",
            "config.dev.seed must be an integer >= 0, got 0.5",
            'config.trainBase.layerNorms must be a boolean, got "yes"',
          ].every((m) => e.message.includes(m)),
      );
      assert.throws(() => parseTeachersConfig({ base: "b", groups: [3] }), /config\.groups must be a non-empty list of names or null, got \[3\]/);
    });

    it("a KL temperature so small that the KL vanishes in float32 is refused with the threshold", () => {
      const ok = { base: "b", teacher: "t", teachers: "ts" };
      assert.throws(() => parseFinetuneConfig({ ...ok, losses: { temperature: 0.01 } }), /losses\.temperature 0\.01 is below 0\.05: .*exp\(-Δ\/T\).*103/);
      assert.throws(() => parseFinetuneConfig({ ...ok, losses: { temperature: 1e-30 } }), /below 0\.05/);
      parseFinetuneConfig({ ...ok, losses: { temperature: 0.05 } });
      parseFinetuneConfig({ ...ok, losses: { kl: 0, temperature: 1e-3 } }); // no KL, the temperature is unused
    });
  });

  describe("checkpoints and resume", () => {
    it("leftovers of a killed write (tmp files and folders of dead processes) are removed on the next start, and said so", async () => {
      const out = tmp();
      const dead = deadPid();
      fs.mkdirSync(path.join(out, `checkpoint.tmp-${dead}`, "nested"), { recursive: true });
      fs.mkdirSync(path.join(out, "model"), { recursive: true });
      fs.writeFileSync(path.join(out, "model", `model.safetensors.tmp-${dead}`), "partial");
      fs.writeFileSync(path.join(out, `.per_task.csv.tmp-${dead}-k3j2`), "partial");
      const { text } = await captureStderr(() => run(out, cfg({ steps: 2 })));
      assert.match(text, /removed 3 leftover\(s\) of an interrupted write/);
      const left = fs.readdirSync(out, { recursive: true }).map(String);
      assert.deepEqual(left.filter((f) => f.includes(".tmp-")), []);
    });

    it("resuming on changed data is refused, saying what changed", async () => {
      const out = tmp();
      const dir = tmp();
      const file = path.join(dir, "train.jsonl");
      fs.writeFileSync(file, "version 1\n");
      const data = { files: [file], tasks: ["task1", "task2"] };
      await run(out, cfg({ steps: 4 }), { stopAtStep: 2, run: { data } });
      const state = readTrainerState(findCheckpoint(out)!);
      assert.equal(state.dataFingerprint!.files[path.resolve(file)]!.size, 10);
      fs.writeFileSync(file, "version 22\n");
      await assert.rejects(run(out, cfg({ steps: 4 }), { resume: true, run: { data } }), (e: Error) => e.message.includes("the training data changed") && e.message.includes(`${path.resolve(file)} changed (10 -> 11 bytes`));
      fs.writeFileSync(file, "version 1\n");
      await assert.rejects(run(out, cfg({ steps: 4 }), { resume: true, run: { data: { ...data, tasks: ["task1", "task3"] } } }), /tasks added: task3[\s\S]*tasks removed: task2/);
      await assert.rejects(run(out, cfg({ steps: 4 }), { resume: true, data: examples(24, 2), run: { data } }), /the examples' tokens differ/);
      await assert.rejects(run(out, cfg({ steps: 4 }), { resume: true, data: examples(20), run: { data } }), /examples: 24 -> 20/);
      const ok = await run(out, cfg({ steps: 4 }), { resume: true, run: { data } });
      assert.equal(ok.result.resumedFrom, 2);
    });

    it("after a non-finite stop, a lower learning rate is accepted on resume only when asked for, and recorded", async () => {
      const out = tmp();
      await assert.rejects(run(out, cfg({ steps: 6, checkpointEvery: 2 }), { poison: 4 }), /the loss is NaN at step 4/);
      const lower = cfg({ steps: 6, checkpointEvery: 2, schedule: { kind: "linear", lr: 1e-3, warmupSteps: 2 } });
      await assert.rejects(run(out, lower, { resume: true }), (e: Error) => /train\.schedule\.lr: 0\.003 -> 0\.001/.test(e.message) && /--allow-change KEY/.test(e.message));
      await assert.rejects(run(out, lower, { resume: true, run: { allowChanges: ["train.seed"] } }), /'train\.seed' cannot be changed on resume/);
      const { value, text } = await captureStderr(() => run(out, lower, { resume: true, run: { allowChanges: ["train.schedule.lr"] } }));
      assert.equal(value.result.resumedFrom, 2);
      assert.match(text, /resuming at step 2 with train\.schedule\.lr changed from 0\.003 to 0\.001/);
      const state = readTrainerState(findCheckpoint(out)!);
      assert.equal(state.step, 6);
      assert.deepEqual(state.overrides!.map((o) => [o.atStep, o.key, o.from, o.to]), [[2, "train.schedule.lr", 0.003, 0.001]]);
      // another key changed with it is still refused
      await assert.rejects(run(out, cfg({ ...lower, steps: 8, seed: 4 }), { resume: true, run: { allowChanges: ["train.schedule.lr", "train.steps"] } }), /train\.seed: 3 -> 4/);
    });

    it("NaN or Inf inside a checkpoint is refused on load, naming the tensor", async () => {
      const out = tmp();
      await run(out, cfg({ steps: 4 }), { stopAtStep: 2 });
      const ck = findCheckpoint(out)!;
      const file = path.join(ck, "trainable.safetensors");
      const poisoned = new Map<string, tf.Tensor>([["shared.weight", tf.tensor([1, NaN, Infinity, 2], [2, 2])]]);
      writeSafetensors(file, poisoned);
      poisoned.forEach((t) => t.dispose());
      await assert.rejects(run(out, cfg({ steps: 4 }), { resume: true }), (e: Error) => e.message.includes(file) && e.message.includes('"shared.weight" holds 2 non-finite value(s)') && e.message.includes("flat index 1"));
    });
  });

  describe("model configs", () => {
    const base = { vocab_size: 100, d_model: 8, d_kv: 4, d_ff: 16, num_layers: 1, num_heads: 2 };
    it("absurd sizes are refused up front, with the limit", () => {
      assert.throws(() => parseT5Config({ ...base, num_layers: 1_000_000 }, "m/config.json"), /m\/config\.json: invalid T5 config:[\s\S]*num_layers: 1000000 is above the limit of 256/);
      assert.throws(() => parseT5Config({ ...base, vocab_size: 1e12 }), /vocab_size: 1000000000000 is above the limit of 4,194,304/);
      assert.throws(() => parseT5Config({ ...base, vocab_size: 4_000_000, d_model: 4096 }), /largest weight matrix would hold 1\.64e\+10 values/);
      assert.throws(() => parseT5Config({ ...base, num_layers: 200, d_model: 16384, d_ff: 65536, d_kv: 128, num_heads: 128 }), /GiB of float32 weights, above the 64 GiB limit/);
      assert.throws(() => parseT5Config({ ...base, eos_token_id: 100 }), /eos_token_id: 100 is not below vocab_size 100/);
    });

    it("a checkpoint folder with such a config.json fails in milliseconds, before reading weights", () => {
      const dir = tmp();
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...base, num_layers: 1_000_000, num_decoder_layers: 1_000_000 }));
      fs.writeFileSync(path.join(dir, "model.safetensors"), "not read");
      const t0 = performance.now();
      assert.throws(() => loadT5Checkpoint(dir), /num_layers: 1000000 is above the limit/);
      assert.ok(performance.now() - t0 < 1000);
    });
  });

  describe("nothing dropped silently", () => {
    const task = (name: string, extra: Record<string, unknown> = {}) =>
      JSON.stringify({ task: name, Definition: ["Do it."], Categories: ["Misc"], Instances: [{ id: `${name}-0`, input: "a", output: ["b"] }], "Positive Examples": [], "Negative Examples": [], ...extra });

    it("tasks skipped while loading training data are printed with the reason", async () => {
      const data = tmp();
      fs.mkdirSync(path.join(data, "sni"));
      fs.writeFileSync(path.join(data, "sni", "sni_train.jsonl.gz"), gzipSync([task("task1_ok"), task("task2_bad", { Definition: [""] }), task("task3_bad", { Instances: [] })].join("\n") + "\n"));
      const { value, text } = await captureStderr(() => loadTrainTasks(data, "metatrain"));
      assert.equal(value.tasks.length, 1);
      assert.match(text, /\[metatrain\] SNI train .* 1 tasks, 1 instances; skipped 2 task\(s\)/);
      assert.match(text, /task2_bad.*missing or empty Definition/);
      assert.match(text, /task3_bad.*empty Instances/);
    });

    it("invalid UTF-8 in a task file is an error naming the byte offset and line, also across chunks and inside gzip", async () => {
      const dir = tmp();
      const good = Buffer.from(task("task1_ok") + "\n");
      const bad = Buffer.concat([good, Buffer.from(task("task2_x").replace("Do it.", "Do \u00e9t.")).subarray(0, 30), Buffer.from([0xc3, 0x28]), Buffer.from("...\n")]);
      const offset = good.length + 30;
      const plain = path.join(dir, "t.jsonl");
      fs.writeFileSync(plain, bad);
      await assert.rejects(loadSniFile(plain, "train"), new RegExp(`t\\.jsonl: invalid UTF-8 at byte offset ${offset} \\(line 2: bytes c3 28`));
      const gz = path.join(dir, "t.jsonl.gz");
      fs.writeFileSync(gz, gzipSync(bad));
      await assert.rejects(loadSniFile(gz, "train"), new RegExp(`t\\.jsonl\\.gz \\(decompressed\\): invalid UTF-8 at byte offset ${offset}`));
      // A valid two-byte character cut between chunks is fine; an invalid one is found at its stream offset.
      const s = new StrictUtf8Stream("s");
      assert.equal(s.write(Uint8Array.from([0x61, 0xc3])) + s.write(Uint8Array.from([0xa9, 0x62])), "aéb");
      s.end();
      const s2 = new StrictUtf8Stream("s2");
      s2.write(Uint8Array.from([0x61, 0x0a, 0xe2, 0x82]));
      assert.throws(() => s2.write(Uint8Array.from([0x41])), /s2: invalid UTF-8 at byte offset 2 \(line 2/);
      const s3 = new StrictUtf8Stream("s3");
      s3.write(Uint8Array.from([0x61, 0xf0, 0x9f]));
      assert.throws(() => s3.end(), /cut by the end of the data at byte offset 1/);
    });

    it("an instruction file (tagi generate --instruction-file) with invalid UTF-8 is an error naming the offset", () => {
      const file = path.join(tmp(), "instruction.txt");
      fs.writeFileSync(file, Buffer.concat([Buffer.from("Definition: translate\nto Fran"), Buffer.from([0xe7]), Buffer.from("ais.")]));
      assert.throws(() => readUtf8File(file), new RegExp(`${file.replace(/[.]/g, "\\.")}: invalid UTF-8 at byte offset 29 \\(line 2: bytes e7 61`));
      // overlong forms, surrogates and code points above U+10FFFF are invalid, as in WHATWG's decoder
      assert.equal(firstInvalidUtf8(Uint8Array.from([0xc0, 0xaf])), 0);
      assert.equal(firstInvalidUtf8(Uint8Array.from([0x41, 0xed, 0xa0, 0x80])), 1);
      assert.equal(firstInvalidUtf8(Uint8Array.from([0xf4, 0x90, 0x80, 0x80])), 0);
      assert.equal(firstInvalidUtf8(Buffer.from("ok: é ✓ 🙂")), -1);
    });
  });
});
