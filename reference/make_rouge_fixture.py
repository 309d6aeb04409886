"""Fixture for test/rouge.test.ts: SNI's ROUGE-L / exact match computed by the Python packages.

Usage (Python 3.11, `pip install rouge-score nltk`):
    python3 reference/make_rouge_fixture.py [--data ../shared/data/sni] [--out test/fixtures/rouge/rouge_pairs.json.gz]

Pairs are built from real SNI instances (test and train files, seed 1234): references are instance outputs
(lists of every acceptable output), predictions are perturbations of outputs or inputs (truncations, word
shuffles, case changes, other instances' outputs, inflections to exercise the stemmer, ...), plus hand-written
edge cases (empty, punctuation-only, numbers, non-ASCII, very long, multi-reference). For each pair: rougeL
precision/recall/fmeasure against every reference (RougeScorer(['rougeL'], use_stemmer=True), as SNI's
compute_metrics.py), the max-over-references F, and exact match with SNI's normalize_answer (no article
removal, verbatim from compute_metrics.py). Also >= 3,000 distinct words from SNI with nltk's
PorterStemmer() stems. The tests never run this script.
"""
import argparse
import gzip
import json
import random
import string
from importlib.metadata import version

from nltk.stem.porter import PorterStemmer
from rouge_score import rouge_scorer
from rouge_score import tokenize as rs_tokenize

scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


# verbatim from Tk-Instruct/TAGI src/compute_metrics.py
def normalize_answer(s):
    """Lower text and remove punctuation, and extra whitespace."""

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_punc(lower(s)))


def load(path, max_tasks=None):
    tasks = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            tasks.append(json.loads(line))
    return tasks


def inflect(word, rng):
    w = word
    choices = []
    if w.endswith("y") and len(w) > 2:
        choices += [w[:-1] + "ies", w[:-1] + "ied"]
    if w.endswith("e"):
        choices += [w + "d", w[:-1] + "ing", w + "s", w + "ment"]
    choices += [w + "s", w + "es", w + "ed", w + "ing", w + "ly", w + "ness", w + "ational", w + "fulness",
                w + "izer", w + "alli", w + "logi", w + "ization", w + "er", w + "ies", w + "ous"]
    return rng.choice(choices)


def perturb(text, rng, other_texts):
    words = text.split()
    kind = rng.randrange(12)
    if kind == 0 and words:  # truncation
        return " ".join(words[: rng.randrange(0, len(words) + 1)]), "truncate"
    if kind == 1 and words:  # shuffle
        w = words[:]
        rng.shuffle(w)
        return " ".join(w), "shuffle"
    if kind == 2:
        return rng.choice([text.upper(), text.lower(), text.title(), text.swapcase()]), "case"
    if kind == 3:
        return rng.choice(other_texts), "other"
    if kind == 4 and words:  # inflect some words
        w = [inflect(x, rng) if rng.random() < 0.5 and x.isalpha() else x for x in words]
        return " ".join(w), "inflect"
    if kind == 5 and words:  # drop words
        return " ".join(x for x in words if rng.random() < 0.7), "drop"
    if kind == 6 and words:  # insert words from another text
        o = rng.choice(other_texts).split()
        w = words[:]
        for x in o[:5]:
            w.insert(rng.randrange(len(w) + 1), x)
        return " ".join(w), "insert"
    if kind == 7:
        return text, "identical"
    if kind == 8:  # punctuation / whitespace noise
        return "".join(c + (rng.choice(string.punctuation) if rng.random() < 0.1 else "") for c in text) + rng.choice(["", ".", "!!", " \n"]), "punct"
    if kind == 9 and words:  # prefix with common answer wrappers
        return rng.choice(["The answer is ", "Answer: ", "A ", "an ", "the "]) + text, "wrap"
    if kind == 10 and words:  # first/last half
        h = len(words) // 2
        return " ".join(words[h:] if rng.random() < 0.5 else words[:h]), "half"
    return text + " " + rng.choice(other_texts), "concat"


EDGE = [
    ("", ["hello world"]),
    ("hello world", [""]),
    ("", [""]),
    ("   ", ["   "]),
    ("...", ["!!!"]),
    ("?!", ["?!"]),
    ("--- ;; ''", ["yes"]),
    ("yes", ["Yes."]),
    ("Yes", ["yes", "no"]),
    ("The cat", ["cat"]),
    ("a cat", ["the cat"]),
    ("an apple", ["apple"]),
    ("12", ["12"]),
    ("12.5", ["12,5"]),
    ("1,000,000", ["1000000"]),
    ("3.14159 is pi", ["pi is 3.14159"]),
    ("0", ["0.0"]),
    ("-7", ["7"]),
    ("café naïve résumé", ["cafe naive resume"]),
    ("Café", ["café"]),
    ("Ünïcödé façade", ["unicode facade"]),
    ("北京 是 中国 的 首都", ["北京是中国的首都"]),
    ("東京 Tokyo", ["tokyo"]),
    ("😀 happy 🎉", ["happy"]),
    ("😀", ["😀"]),
    ("İstanbul", ["istanbul"]),
    ("straße", ["strasse"]),
    ("\u212Aelvin", ["kelvin"]),
    ("ﬁne", ["fine"]),
    ("Ⅻ", ["xii"]),
    ("x\u00a0y", ["x y"]),
    ("x\u3000y", ["x y"]),
    ("tab\tand\nnewline", ["tab and newline"]),
    ("running runs ran runner", ["run"]),
    ("generously generalization", ["general"]),
    ("flies dying lying tying skies", ["fly die lie tie sky"]),
    ("news innings outings cannings", ["news inning outing canning"]),
    ("proceed exceed succeed proceeding", ["proceed"]),
    ("ties dies pies lies", ["tie die pie lie"]),
    ("cried tied died", ["cry tie die"]),
    ("happily happiness happy", ["happi"]),
    ("yyyy yyyyy syzygy", ["yyy"]),
    ("ABC", ["abc"]),
    ("aaa bbb", ["aaa", "bbb", "aaa bbb"]),
    ("one two three", ["three two one", "one two", "one three", "four"]),
    ("positive", ["Positive", "POSITIVE", "positive."]),
    ("don't", ["dont"]),
    ("don't", ["do n't"]),
    ("e-mail", ["e mail"]),
    ("A.B.C.", ["abc"]),
    ("It's 5 o'clock", ["its 5 oclock"]),
    ("\u201cquoted\u201d", ["quoted"]),
    ("em\u2014dash", ["em dash"]),
    ("under_score", ["under score"]),
    ("a" * 5, ["a" * 5]),
    ("the the the", ["the"]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/sni")
    ap.add_argument("--out", default="test/fixtures/rouge/rouge_pairs.json.gz")
    args = ap.parse_args()
    rng = random.Random(1234)
    tasks = load(f"{args.data}/sni_test.jsonl.gz") + load(f"{args.data}/sni_train.jsonl.gz")

    pairs = []  # (prediction, references, kind, source)

    def add(pred, refs, kind, source):
        pairs.append((pred, list(refs), kind, source))

    for pred, refs in EDGE:
        add(pred, refs, "edge", "handwritten")

    task_sample = rng.sample(tasks, 220)
    for t in task_sample:
        inst = t["Instances"]
        outputs_pool = [o for i in inst for o in i["output"]]
        for i in rng.sample(inst, min(5, len(inst))):
            refs = i["output"]
            if not refs:
                continue
            base = rng.choice(refs)
            if rng.random() < 0.15:
                base = i["input"][:400]
            pred, kind = perturb(base, rng, outputs_pool)
            add(pred, refs, kind, t["task"] + "/" + i["id"])

    # multi-reference instances (real)
    multi = [(t["task"], i) for t in tasks for i in t["Instances"] if len(i["output"]) > 1]
    for task, i in rng.sample(multi, min(150, len(multi))):
        pred, kind = perturb(rng.choice(i["output"]), rng, [o for o in i["output"]] + [i["input"][:200]])
        add(pred, i["output"], "multi-" + kind, task + "/" + i["id"])

    # very long strings
    for _ in range(8):
        t = rng.choice(tasks)
        i = rng.choice(t["Instances"])
        long_ref = (i["input"] + " ") * (1 + 3000 // max(1, len(i["input"])))
        pred, kind = perturb(long_ref, rng, [long_ref[::-1]])
        add(pred, [long_ref], "long-" + kind, t["task"] + "/" + i["id"])

    # non-ASCII from real data: SNI instances whose text has non-ASCII characters
    nonascii = [(t["task"], i) for t in tasks for i in t["Instances"]
                if any(ord(c) > 127 for c in i["input"] + "".join(i["output"]))]
    for task, i in rng.sample(nonascii, min(60, len(nonascii))):
        pred, kind = perturb(i["output"][0] if i["output"] else "", rng, [i["input"][:300]])
        add(pred, i["output"] or [""], "nonascii-" + kind, task + "/" + i["id"])

    records = []
    for pred, refs, kind, source in pairs:
        per_ref = []
        for r in refs:
            s = scorer.score(target=r, prediction=pred)["rougeL"]
            per_ref.append([s.precision, s.recall, s.fmeasure])
        em = max(normalize_answer(pred) == normalize_answer(r) for r in refs)
        records.append({
            "prediction": pred,
            "references": refs,
            "kind": kind,
            "source": source,
            "rougeL": per_ref,
            "sniRougeL": max(x[2] for x in per_ref),
            "exactMatch": 1 if em else 0,
            "normalized": normalize_answer(pred),
        })

    # words for the stemmer: distinct rouge-score tokens (before stemming) from SNI text, plus capitalized
    words = set()
    for t in tasks:
        for i in t["Instances"][:20]:
            for text in [i["input"]] + i["output"]:
                for w in rs_tokenize.NON_ALPHANUM_RE.sub(" ", text.lower()).split():
                    words.add(w)
    words = sorted(words)
    rng.shuffle(words)
    alpha = [w for w in words if w.isalpha() and len(w) > 3][:4200]
    other = [w for w in words if not (w.isalpha() and len(w) > 3)][:300]
    extra = ["sky", "skies", "dying", "lying", "tying", "news", "innings", "inning", "outings", "outing",
             "cannings", "canning", "howe", "proceed", "exceed", "succeed", "ties", "pies", "cried", "tied",
             "spied", "flies", "yyyyy", "syzygy", "y", "ys", "generalli", "fulli", "analogi", "archaeologi",
             "conditional", "rational", "happy", "enjoy", "hopping", "falling", "hissing", "fizzed", "failing",
             "filing", "controlling", "roll", "agreed", "feed", "bled", "sing", "caresses", "ponies", "cats",
             "Running", "GENERALIZATION", "is", "as", "a", "ed", "ing", "eed", "ied", "ies"]
    stem_words = list(dict.fromkeys(extra + alpha + other))
    stemmer = PorterStemmer()
    stems = [[w, stemmer.stem(w)] for w in stem_words]

    out = {
        "generator": "reference/make_rouge_fixture.py",
        "versions": {"rouge-score": version("rouge-score"), "nltk": version("nltk"), "python": __import__("sys").version.split()[0]},
        "scorer": "rouge_scorer.RougeScorer(['rougeL'], use_stemmer=True).score(target=reference, prediction=prediction)",
        "pairs": records,
        "stems": stems,
    }
    with gzip.open(args.out, "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(out, f, ensure_ascii=False)
    print(f"{len(records)} pairs, {len(stems)} words -> {args.out}")


if __name__ == "__main__":
    main()
