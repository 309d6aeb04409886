"""Golden promptsource renders for test/p3.test.ts, made with Python Jinja2 exactly as promptsource's
`Template.apply` (bigscience-workshop/promptsource @ 7dab96a3, promptsource/templates.py): Environment(loader=
BaseLoader), filters choice/most_frequent/highlight, global zip, "|||" pipe protection, answer_choices rendered
and split first, `| string | truncate(2048)` appended to every `}}` (TEXT_VAR_LENGTH), parts stripped.

Records are built from ../shared/data/p3/raw with the data README's label mappings (the same as src/data/p3.ts).
Templates using the random `choice` filter and HellaSwag templates needing ctx_a/ctx_b are left out.

    python3 reference/make_p3_fixture.py   # writes test/fixtures/p3/renders.json (jinja2 3.1.x, PyYAML 6)
"""
import bz2, json, os, random, re, sys
from collections import Counter
import jinja2, yaml
from jinja2 import BaseLoader, Environment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "p3")

env = Environment(loader=BaseLoader)
env.globals.update(zip=zip)
env.filters["highlight"] = lambda s: "<span style='color: #F08080'>" + s + "</span>"
env.filters["choice"] = lambda xs: random.choice(xs)
def most_frequent(items):
    if not items: return
    c = Counter(items).most_common(); m = c[0][1]
    return [x[0] for x in c if x[1] == m]
env.filters["most_frequent"] = most_frequent
PIPE = "3ed2dface8203c4c9dfb1a5dc58e41e0"

def esc(ex): return {k: (v.replace("|||", PIPE) if isinstance(v, str) else v) for k, v in ex.items()}
def unesc(s): return s.replace(PIPE, "|||")
def choices(t, ex):
    if t.get("answer_choices") is None: return None
    return [unesc(c.strip()) for c in env.from_string(t["answer_choices"]).render(**esc(ex)).split("|||")]
def apply(t, ex):
    jinja = t["jinja"].replace("}}", " | string | truncate(2048) }}")
    p = esc(ex); p["answer_choices"] = choices(t, ex)
    return [unesc(x).strip() for x in env.from_string(jinja).render(**p).split("|||")]

for tag in ("!Template", "!TemplateMetadata"):
    yaml.SafeLoader.add_constructor(tag, lambda l, n: l.construct_mapping(n, deep=True))

def jsonl(p): return [json.loads(l) for l in open(os.path.join(DATA, "raw", p)) if l.strip()]
B = {False: 0, True: 1}
def fix_wst(ex):  # HF datasets super_glue.py _fix_wst (wsc.fixed)
    for k in ("span1", "span2"):
        text, index = ex[k + "_text"], ex[k + "_index"]
        if text in ex["text"] or text in ("Kamenev and Zinoviev", "Kamenev, Zinoviev, and Stalin"): continue
        if "theyscold" in text: ex["span2_index"] = 10
        fw = ex["text"].split()[index]
        text = (text[0].lower() if fw[0].islower() else text[0].upper()) + text[1:]
        ex[k + "_text"] = text.rstrip(".").replace("\n", " ")
    return ex
def records(task):
    if task == "rte": return [dict(premise=r["premise"], hypothesis=r["hypothesis"], idx=r["idx"], label={"entailment": 0, "not_entailment": 1}[r["label"]]) for r in jsonl("super_glue/rte/val.jsonl")]
    if task == "cb": return [dict(premise=r["premise"], hypothesis=r["hypothesis"], idx=r["idx"], label={"entailment": 0, "contradiction": 1, "neutral": 2}[r["label"]]) for r in jsonl("super_glue/cb/val.jsonl")]
    if task == "copa": return [dict(premise=r["premise"], choice1=r["choice1"], choice2=r["choice2"], question=r["question"], idx=r["idx"], label=r["label"]) for r in jsonl("super_glue/copa/val.jsonl")]
    if task == "wic": return [dict(word=r["word"], sentence1=r["sentence1"], sentence2=r["sentence2"], start1=r["start1"], start2=r["start2"], end1=r["end1"], end2=r["end2"], idx=r["idx"], label=B[r["label"]]) for r in jsonl("super_glue/wic/val.jsonl")]
    if task == "wsc": return [dict(**fix_wst(dict(text=r["text"], span1_index=r["target"]["span1_index"], span2_index=r["target"]["span2_index"], span1_text=r["target"]["span1_text"], span2_text=r["target"]["span2_text"])), idx=r["idx"], label=B[r["label"]]) for r in jsonl("super_glue/wsc/val.jsonl")]
    if task == "winogrande": return [dict(sentence=r["sentence"], option1=r["option1"], option2=r["option2"], answer=r["answer"]) for r in jsonl("winogrande/dev.jsonl")]
    if task.startswith("anli"): return [dict(uid=r["uid"], premise=r["context"], hypothesis=r["hypothesis"], label={"e": 0, "n": 1, "c": 2}[r["label"]], reason=r.get("reason", "")) for r in jsonl("anli/R%s/dev.jsonl" % task[-1])]
    if task == "hellaswag":
        lines = bz2.open(os.path.join(DATA, "raw/hellaswag/hellaswag_val_full.txt.bz2"), "rt", encoding="utf8").read().split("\n")
        while lines and lines[-1] == "": lines.pop()
        out = []
        for i in range(0, len(lines), 6):
            a, c = lines[i].split(": ", 1)
            out.append(dict(activity_label=a, ctx=c, endings=lines[i + 2:i + 6], label=lines[i + 1].strip()))
        return out
TEMPLATES = {"rte": "super_glue/rte", "cb": "super_glue/cb", "copa": "super_glue/copa", "wic": "super_glue/wic", "wsc": "super_glue/wsc.fixed",
             "winogrande": "winogrande/winogrande_xl", "anli_r1": "anli", "anli_r2": "anli", "anli_r3": "anli", "hellaswag": "hellaswag"}
ROWS = {"wsc": [0, 5, 28], "copa": [0, 1, 2]}

out = []
for task, tdir in TEMPLATES.items():
    recs = records(task)
    ts = yaml.safe_load(open(os.path.join(DATA, "promptsource_templates", tdir, "templates.yaml")))["templates"]
    for t in ts.values():
        src = t["jinja"] + (t.get("answer_choices") or "")
        if "choice" in re.findall(r"\|\s*(\w+)", src) or re.search(r"\bctx_[ab]\b", src): continue
        for row in ROWS.get(task, [0, 1] if not task.startswith("anli_r") or task == "anli_r1" else [0]):
            parts = apply(t, recs[row])
            out.append(dict(task=task, template=t["name"], row=row, input=parts[0], target=parts[1] if len(parts) > 1 else "",
                            answerChoices=choices(t, recs[row]) or []))
json.dump(dict(generator="reference/make_p3_fixture.py", jinja2=jinja2.__version__, pyyaml=yaml.__version__, renders=out),
          open(os.path.join(ROOT, "test/fixtures/p3/renders.json"), "w"), indent=1, ensure_ascii=False)
print(len(out), "renders")
