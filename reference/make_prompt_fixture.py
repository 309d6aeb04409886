"""Golden Tk-Instruct prompt strings for test/sni.test.ts -> test/fixtures/sni/prompts.json.

The formatting below is DataCollatorForNI.__call__ from Tk-Instruct, copied verbatim (only the loop over the
batch, the tk_instruct random schema and the tensor part are left out):
  repo   github.com/yizhongw/Tk-Instruct
  file   src/ni_collator.py
  commit d8184faa297caaef272044c92761cf618682d5fa (last change to the file; repo HEAD 7c0e4000901e7c148fbb8964042ebfc433f8d98e)
The TAGI repo (github.com/Xnhyacinth/TAGI, src/ni_collator.py at 8702b4eaaa21aac06890170be3b213a9a20a90a6)
vendors the same strings.

The tokenizer is the shared T5 vocabulary read with the Rust `tokenizers` package (as T5TokenizerFast does):
`tokenizer(text)["input_ids"]` appends </s>, like the collator's call.

Run from the project root:  python3 reference/make_prompt_fixture.py
Needs: Python 3, `tokenizers`. Reads ../shared/data/sni/sni_test.jsonl.gz (never copied into the repo).
"""
import gzip
import json
import os
import string

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "test", "fixtures", "sni", "prompts.json")

_tok = Tokenizer.from_file(os.path.join(DATA, "t5", "tokenizer.json"))


def tokenizer(text):
    return {"input_ids": _tok.encode(text).ids}


def collator_source(instance, add_task_name, add_task_definition, num_pos_examples, num_neg_examples,
                    add_explanation, max_source_length):
    """Verbatim from DataCollatorForNI.__call__ (self.tokenizer -> tokenizer, self.max_source_length ->
    max_source_length); returns the pieces as well as the source before the final token cut."""
    task_input = ""
    # add the input first.
    task_input += "Now complete the following example -\n"
    task_input += f"Input: {instance['Instance']['input'].strip()}"
    if not task_input[-1] in string.punctuation:
        task_input += "."
    task_input += "\n"
    task_input += "Output: "

    task_name = ""
    if add_task_name:
        task_name += instance["Task"] + ". "

    definition = ""
    if add_task_definition:
        if isinstance(instance["Definition"], list):
            definition = "Definition: " + instance["Definition"][0].strip() # TODO: should we use <Definition>?
        else:
            definition = "Definition: " + instance["Definition"].strip()
        if not definition[-1] in string.punctuation:
            definition += "."
        definition += "\n\n"

    # try to add positive examples.
    pos_examples = []
    for idx, pos_example in enumerate(instance["Positive Examples"][:num_pos_examples]):
        pos_example_str = f" Positive Example {idx+1} -\n"
        pos_example_str += f"Input: {pos_example['input'].strip()}"
        if not pos_example_str[-1] in string.punctuation:
            pos_example_str += "."
        pos_example_str += "\n"
        pos_example_str += f" Output: {pos_example['output'].strip()}"
        if not pos_example_str[-1] in string.punctuation:
            pos_example_str += "."
        pos_example_str += "\n"
        if add_explanation and "explanation" in pos_example:
            pos_example_str += f" Explanation: {pos_example['explanation'].strip()}"
            if not pos_example_str[-1] in string.punctuation:
                pos_example_str += "."
            pos_example_str += "\n"
        pos_example_str += "\n"
        if len(tokenizer(definition + " ".join(pos_examples) + pos_example_str + task_input)["input_ids"]) <= max_source_length:
            pos_examples.append(pos_example_str)
        else:
            break

    assert num_neg_examples == 0  # the paper's settings use no negative examples
    neg_examples = []

    source = task_name + definition + "".join(pos_examples) + "".join(neg_examples) + task_input
    tokenized_source = tokenizer(source)["input_ids"]
    return {
        "source": source,
        "instruction": task_name + definition + "".join(pos_examples),
        "instance": task_input,
        "numPosExamples": len(pos_examples),
        "numTokens": len(tokenized_source),
        "fits": len(tokenized_source) <= max_source_length,
    }


def to_collator_instance(task, inst):
    # what ni_dataset.py yields: the task's fields plus "Task" and "Instance"
    d = dict(task)
    d["Task"] = task["task"]
    d["Instance"] = inst
    return d


def main():
    with gzip.open(os.path.join(DATA, "sni", "sni_test.jsonl.gz"), "rt", encoding="utf-8") as f:
        tasks = [json.loads(line) for line in f]

    def def_text(t):
        return t["Definition"][0].strip()

    # three real tasks, chosen by rule: the first task; the first whose definition lacks final punctuation;
    # the first (other) whose first positive example's output lacks final punctuation
    chosen = [tasks[0]]
    chosen.append(next(t for t in tasks if def_text(t)[-1] not in string.punctuation and t not in chosen))
    chosen.append(next(t for t in tasks if t not in chosen
                       and t["Positive Examples"][0]["output"].strip()[-1:] not in string.punctuation))

    cases = []
    for t in chosen:
        # instance 0, and the first instance whose input lacks final punctuation (if any)
        idxs = [0]
        j = next((i for i, x in enumerate(t["Instances"]) if x["input"].strip()[-1:] not in string.punctuation), None)
        if j is not None and j != 0:
            idxs.append(j)
        for i in idxs:
            inst = t["Instances"][i]
            ci = to_collator_instance(t, inst)
            for fmt, npos in (("def", 0), ("def+2pos", 2)):
                r = collator_source(ci, False, True, npos, 0, False, 10**9)
                cases.append({"task": t["task"], "instanceId": inst["id"], "format": fmt, "maxSourceLength": None, **r})
            # the example-dropping rule: a limit at which only the first positive example fits
            d = collator_source(ci, False, True, 0, 0, False, 10**9)
            one = collator_source(ci, False, True, 1, 0, False, 10**9)
            limit = one["numTokens"] + 1
            r = collator_source(ci, False, True, 2, 0, False, limit)
            cases.append({"task": t["task"], "instanceId": inst["id"], "format": "def+2pos", "maxSourceLength": limit, **r})
            # a limit at which no example fits
            limit0 = d["numTokens"] + 1
            r = collator_source(ci, False, True, 2, 0, False, limit0)
            cases.append({"task": t["task"], "instanceId": inst["id"], "format": "def+2pos", "maxSourceLength": limit0, **r})
        # add_task_name and add_explanation (off in the paper, offered as options)
        inst = t["Instances"][0]
        r = collator_source(to_collator_instance(t, inst), True, True, 2, 0, True, 10**9)
        cases.append({"task": t["task"], "instanceId": inst["id"], "format": "def+2pos", "maxSourceLength": None,
                      "addTaskName": True, "addExplanation": True, **r})

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({
            "source": {"repo": "github.com/yizhongw/Tk-Instruct", "file": "src/ni_collator.py",
                       "commit": "d8184faa297caaef272044c92761cf618682d5fa"},
            "generator": "reference/make_prompt_fixture.py",
            "tasks": [t["task"] for t in chosen],
            "cases": cases,
        }, f, ensure_ascii=False, indent=1)
    print(f"wrote {OUT}: {len(cases)} cases over {[t['task'] for t in chosen]}")


if __name__ == "__main__":
    main()
