/** The examples under each command's --help (every command has some; test/cli.test.ts checks them against its options). */
export const COMMAND_EXAMPLES: Record<string, string[]> = {
  evaluate: [
    "npm run tagi -- evaluate --model runs/tiny/metatrain/model --benchmark sni --format def+2pos --max-instances-per-task 5",
    "npm run tagi -- evaluate --model runs/tiny/metatrain/model --benchmark sni --split dev --max-instances-per-task 8   # choices on held-out train tasks",
    "npm run tagi -- evaluate --tagi runs/tiny/finetune/model --benchmark sni --format def+2pos --max-input-tokens 128",
    "npm run tagi -- evaluate --model runs/tiny/metatrain/model --benchmark p3 --max-examples-per-template 10",
  ],
  "pretrain-base": ["npm run tagi -- pretrain-base --config configs/tiny/pretrain-base.json --out runs/tiny/base-span --set train.steps=100"],
  metatrain: ["npm run tagi -- metatrain --config configs/tiny/metatrain.json --out runs/tiny/metatrain-def --set format=def"],
  teachers: ["npm run tagi -- teachers --config configs/tiny/teachers.json --out runs/tiny/teachers --resume"],
  "pretrain-hyper": ["npm run tagi -- pretrain-hyper --config configs/tiny/pretrain-hyper.json --out runs/tiny/pretrain-hyper"],
  finetune: [
    "npm run tagi -- finetune --config configs/tiny/finetune.json --out runs/tiny/finetune",
    "npm run tagi -- finetune --config configs/tiny/finetune.json --set losses.ins=0.5 --print-config   # the merged config, no run",
  ],
  "teacher-logits": ["npm run tagi -- teacher-logits --config configs/tiny/finetune.json --set format=def --out runs/tiny/teacher-logits-def --top-k 64"],
  generate: ['npm run tagi -- generate --tagi runs/tiny/finetune/model --instruction "Definition: Translate the sentence into French." --out my-adapter'],
  experiment: [
    "npm run experiment -- tagi --seeds 0,1,2 --scale tiny",
    "npm run experiment -- no-ft --seed 0 --reevaluate p3",
    "npm run experiment -- tagi,hint,hypter --seeds 0,1,2 --scale small --parallel 2",
    "npm run experiment -- tagi,hint --seeds 0,1,2 --scale small --executor slurm --profile configs/slurm/cpu.json",
    "npm run experiment -- status --scale small",
  ],
  "experiment-cell": ["npm run tagi -- experiment-cell --cells runs/small/slurm/GRID/layer-0.json --scale small   # run by sbatch, not by hand"],
  demo: ["npm run demo -- --scale small", "npm run demo -- --scale tiny"],
  prepare: ["npm run tagi -- prepare --scale small --through artifacts/small/teachers"],
  results: ["npm run results"],
  adapters: ["npm run tagi -- adapters --tagi runs/tiny/finetune/model --teachers runs/tiny/teachers --format def+2pos --out adapters.json"],
  publish: ["npm run tagi -- publish --run runs/small/base --out artifacts/small/base --dtype bf16 --earlier span=runs/small/base-span"],
  artifacts: ["npm run tagi -- artifacts"],
  "training-report": ["npm run tagi -- training-report --runs runs/tiny --out results/training/tiny"],
};
