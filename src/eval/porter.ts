/**
 * NLTK's Porter stemmer, mode NLTK_EXTENSIONS (the default of `nltk.stem.porter.PorterStemmer()`), ported
 * line by line from nltk/stem/porter.py (nltk 3.10.4), because rouge-score's `use_stemmer=True` (and therefore
 * SNI's official ROUGE-L) stems with exactly that class. Written here rather than taken from npm: the common
 * packages (`stemmer`, `porter-stemmer`, `natural`'s PorterStemmer) implement Martin Porter's original or his
 * hosted version, not NLTK's extensions (the irregular-forms pool, `ies`/`ied` on 4-letter words, the step 1c
 * `(*c and not c) Y -> I` rule, the 2-letter `*o` case, `fulli`/`logi` in step 2, the recursive `alli` rule),
 * so they stem some words differently, which changes ROUGE-L scores: on this fixture's 4,416 words of more than
 * 3 letters, stemmer@2.0.1 and porter-stemmer@0.9.1 differ from NLTK on 88, natural@6.12.0 on 87 (skies, dying,
 * news, innings, ...). Tested word for word against NLTK on
 * test/fixtures/rouge/rouge_pairs.json.gz (>= 3,000 distinct words from SNI).
 */

const VOWELS = new Set(["a", "e", "i", "o", "u"]);

/** Irregular forms, mapped to their stems before any rule (NLTK_EXTENSIONS only). */
const POOL: ReadonlyMap<string, string> = (() => {
  const irregular: Record<string, string[]> = {
    sky: ["sky", "skies"],
    die: ["dying"],
    lie: ["lying"],
    tie: ["tying"],
    news: ["news"],
    inning: ["innings", "inning"],
    outing: ["outings", "outing"],
    canning: ["cannings", "canning"],
    howe: ["howe"],
    proceed: ["proceed"],
    exceed: ["exceed"],
    succeed: ["succeed"],
  };
  const pool = new Map<string, string>();
  for (const [key, vals] of Object.entries(irregular)) for (const v of vals) pool.set(v, key);
  return pool;
})();

type Condition = ((stem: string) => boolean) | null;
type Rule = readonly [suffix: string, replacement: string, condition: Condition];

function ch(word: string, i: number): string {
  return word.charAt(i);
}

/** `_is_consonant(word, i)`. */
function isConsonant(word: string, i: number): boolean {
  if (VOWELS.has(ch(word, i))) return false;
  if (ch(word, i) === "y") {
    let negate = false;
    while (i > 0 && ch(word, i) === "y") {
      negate = !negate;
      i -= 1;
    }
    return !VOWELS.has(ch(word, i)) !== negate;
  }
  return true;
}

/** `_consonant_flags`: one pass, same answer as isConsonant at every position. */
function consonantFlags(word: string): boolean[] {
  const flags: boolean[] = [];
  for (let i = 0; i < word.length; i++) {
    const c = ch(word, i);
    if (VOWELS.has(c)) flags.push(false);
    else if (c === "y") flags.push(i === 0 ? true : !flags[i - 1]);
    else flags.push(true);
  }
  return flags;
}

/** `_measure`: the number of "vc" in the consonant/vowel sequence. */
function measure(stem: string): number {
  const flags = consonantFlags(stem);
  let m = 0;
  for (let i = 0; i + 1 < flags.length; i++) if (!flags[i] && flags[i + 1]) m++;
  return m;
}

const hasPositiveMeasure = (stem: string): boolean => measure(stem) > 0;

function containsVowel(stem: string): boolean {
  return consonantFlags(stem).some((c) => !c);
}

function endsDoubleConsonant(word: string): boolean {
  return word.length >= 2 && ch(word, word.length - 1) === ch(word, word.length - 2) && isConsonant(word, word.length - 1);
}

function endsCvc(word: string): boolean {
  const n = word.length;
  return (
    (n >= 3 &&
      isConsonant(word, n - 3) &&
      !isConsonant(word, n - 2) &&
      isConsonant(word, n - 1) &&
      !["w", "x", "y"].includes(ch(word, n - 1))) ||
    (n === 2 && !isConsonant(word, 0) && isConsonant(word, 1))
  );
}

function replaceSuffix(word: string, suffix: string, replacement: string): string {
  if (suffix === "") return word + replacement;
  return word.slice(0, word.length - suffix.length) + replacement;
}

function applyRuleList(word: string, rules: readonly Rule[]): string {
  for (const [suffix, replacement, condition] of rules) {
    if (suffix === "*d" && endsDoubleConsonant(word)) {
      const stem = word.slice(0, -2);
      return condition === null || condition(stem) ? stem + replacement : word;
    }
    if (word.endsWith(suffix)) {
      const stem = replaceSuffix(word, suffix, "");
      return condition === null || condition(stem) ? stem + replacement : word;
    }
  }
  return word;
}

function step1a(word: string): string {
  if (word.endsWith("ies") && word.length === 4) return replaceSuffix(word, "ies", "ie");
  return applyRuleList(word, [
    ["sses", "ss", null],
    ["ies", "i", null],
    ["ss", "ss", null],
    ["s", "", null],
  ]);
}

function step1b(word: string): string {
  if (word.endsWith("ied")) {
    return word.length === 4 ? replaceSuffix(word, "ied", "ie") : replaceSuffix(word, "ied", "i");
  }
  if (word.endsWith("eed")) {
    const stem = replaceSuffix(word, "eed", "");
    return measure(stem) > 0 ? stem + "ee" : word;
  }
  let succeeded = false;
  let intermediate = "";
  for (const suffix of ["ed", "ing"]) {
    if (word.endsWith(suffix)) {
      intermediate = replaceSuffix(word, suffix, "");
      if (containsVowel(intermediate)) {
        succeeded = true;
        break;
      }
    }
  }
  if (!succeeded) return word;
  const last = ch(intermediate, intermediate.length - 1);
  return applyRuleList(intermediate, [
    ["at", "ate", null],
    ["bl", "ble", null],
    ["iz", "ize", null],
    ["*d", last, () => !["l", "s", "z"].includes(last)],
    ["", "e", (stem) => measure(stem) === 1 && endsCvc(stem)],
  ]);
}

function step1c(word: string): string {
  return applyRuleList(word, [["y", "i", (stem) => stem.length > 1 && isConsonant(stem, stem.length - 1)]]);
}

function step2(word: string): string {
  if (word.endsWith("alli") && hasPositiveMeasure(replaceSuffix(word, "alli", ""))) {
    return step2(replaceSuffix(word, "alli", "al"));
  }
  const p = hasPositiveMeasure;
  return applyRuleList(word, [
    ["ational", "ate", p],
    ["tional", "tion", p],
    ["enci", "ence", p],
    ["anci", "ance", p],
    ["izer", "ize", p],
    ["bli", "ble", p],
    ["alli", "al", p],
    ["entli", "ent", p],
    ["eli", "e", p],
    ["ousli", "ous", p],
    ["ization", "ize", p],
    ["ation", "ate", p],
    ["ator", "ate", p],
    ["alism", "al", p],
    ["iveness", "ive", p],
    ["fulness", "ful", p],
    ["ousness", "ous", p],
    ["aliti", "al", p],
    ["iviti", "ive", p],
    ["biliti", "ble", p],
    ["fulli", "ful", p],
    ["logi", "log", () => hasPositiveMeasure(word.slice(0, -3))],
  ]);
}

function step3(word: string): string {
  const p = hasPositiveMeasure;
  return applyRuleList(word, [
    ["icate", "ic", p],
    ["ative", "", p],
    ["alize", "al", p],
    ["iciti", "ic", p],
    ["ical", "ic", p],
    ["ful", "", p],
    ["ness", "", p],
  ]);
}

function step4(word: string): string {
  const g = (stem: string): boolean => measure(stem) > 1;
  return applyRuleList(word, [
    ["al", "", g],
    ["ance", "", g],
    ["ence", "", g],
    ["er", "", g],
    ["ic", "", g],
    ["able", "", g],
    ["ible", "", g],
    ["ant", "", g],
    ["ement", "", g],
    ["ment", "", g],
    ["ent", "", g],
    ["ion", "", (stem) => measure(stem) > 1 && ["s", "t"].includes(ch(stem, stem.length - 1))],
    ["ou", "", g],
    ["ism", "", g],
    ["ate", "", g],
    ["iti", "", g],
    ["ous", "", g],
    ["ive", "", g],
    ["ize", "", g],
  ]);
}

function step5a(word: string): string {
  if (word.endsWith("e")) {
    const stem = replaceSuffix(word, "e", "");
    if (measure(stem) > 1) return stem;
    if (measure(stem) === 1 && !endsCvc(stem)) return stem;
  }
  return word;
}

function step5b(word: string): string {
  return applyRuleList(word, [["ll", "l", () => measure(word.slice(0, -1)) > 1]]);
}

/** `PorterStemmer().stem(word)` (NLTK_EXTENSIONS, to_lowercase=True). */
export function porterStem(word: string): string {
  let stem = word.toLowerCase();
  const irregular = POOL.get(stem);
  if (irregular !== undefined) return irregular;
  if (word.length <= 2) return stem;
  stem = step1a(stem);
  stem = step1b(stem);
  stem = step1c(stem);
  stem = step2(stem);
  stem = step3(stem);
  stem = step4(stem);
  stem = step5a(stem);
  stem = step5b(stem);
  return stem;
}
