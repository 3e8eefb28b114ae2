"""Build the labelled competition-math grading sets (tune, heldout, fresh, untouched; see README.md here).

Each row: `gold` (a MATH gold answer as the dataset writes it), `solution` (a hand-written solution ending),
`label` (is the solution's final answer the gold one, as a careful human grader would say), `kind`, `source`.
Rows come from two places:
- templates: every gold answer of `golds.jsonl` gets one ending (a template below), with the gold value as a model
  would write it (`written`) or a wrong value (`wrong`); the tuning and held-out parts use different templates;
- `hand_<part>.jsonl`: rows written one by one (gold formats, units, lists, prose endings); fresh and untouched
  have only these.

Run `python tests/assets/grading/build_sets.py` to rewrite the sets (deterministic).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent

BODIES = {
    "tune": [
        "Let the unknown quantity be $x$. From the conditions, $3x + 2 = 17$ gives a first relation, and we also "
        "know that $4 \\cdot 6 = 24$.\n\nWe now combine the two relations carefully.",
        "First, list the cases: there are $5$ choices for the first position and $4$ for the second, so "
        "$5 \\cdot 4 = 20$ ordered pairs.\n\nNext, we account for the restrictions.",
        "We start by simplifying. Note that $2^{10} = 1024$ and that $1024 - 1000 = 24$.\n\n"
        "Applying the identity once more finishes the computation.",
        "Step 1: Set up the equation.\nWe have $y = 7$ when $x = 3$.\n\nStep 2: Solve.\nSubtracting, $10 - 3 = 7$.",
        "By the Pythagorean theorem, $3^2 + 4^2 = 5^2$, so the triangle is right-angled.\n\n"
        "Using the formula for the area of a triangle, we continue.",
    ],
    "heldout": [
        "We use complementary counting. The total number of outcomes is $6^2 = 36$, and $11$ of them are excluded.",
        "Write the polynomial as $p(x) = x^2 - 5x + 6 = (x-2)(x-3)$. The roots are therefore $2$ and $3$, which we "
        "use below.",
        "Rewrite the expression with the substitution $u = x + 1$. Then $u^2 = 9$, so $u = \\pm 3$.\n\n"
        "We treat both signs.",
        "Let $s$ be the side length. Then $s^2 = 49$, so $s = 7$, and the diagonal is $7\\sqrt{2}$.",
        "Consider the sequence $a_n = 2n + 1$. Its first terms are $3, 5, 7, 9$, and its $10$th term is $21$.\n\n"
        "Summing the relevant terms:",
    ],
}

# (kind, text, mode): mode "alt" alternates a right and a wrong final value; "trap": the gold value ({g}) is
# mentioned but the final value is wrong (label false); "mirror": a wrong value mentioned, the final one right.
# {a} is the final value, {sym} a symbol (only for golds that are a single expression).
TEMPLATES = {
    "tune": [
        ("prose", "{body}\n\nTherefore, the area of the region is ${a}$ square units.", "alt"),
        ("prose", "{body}\n\nThus, the number we are looking for is \\({a}\\).", "alt"),
        ("prose_equation", "{body}\n\nTherefore, \\({sym} = {a}\\).", "alt"),
        ("prose_bold", "{body}\n\nSo the smallest possible value is **{a_bold}**.", "alt"),
        ("prose_display", "{body}\n\nPutting everything together, we get\n\\[\n{a}\n\\]", "alt"),
        ("prose_fluff_after", "{body}\n\nHence the required value is ${a}$.\n\nI hope this helps! Let me know if "
         "you have any other questions.", "alt"),
        ("prose_right_mid_wrong_final", "{body}\n\nAt first glance one might think the value is ${g}$, but that "
         "ignores the overlap.\n\nCorrecting for it, the final value is ${a}$.", "trap"),
        ("prose_wrong_mid_right_final", "{body}\n\nAt first glance one might think the value is ${x}$, but that "
         "ignores the overlap.\n\nCorrecting for it, the final value is ${a}$.", "mirror"),
        ("boxed", "{body}\n\nSo the answer is $\\boxed{{{a}}}$.", "alt"),
        ("boxed_display", "{body}\n\nFinal result:\n\\[ \\boxed{{{a}}} \\]", "alt"),
        ("boxed_intermediate_then_wrong_final", "{body}\n\nThis gives $k = \\boxed{{{g}}}$.\n\nTherefore, the "
         "total is ${a}$.", "trap"),
        ("boxed_then_check", "{body}\n\nThe answer is $\\boxed{{{a}}}$.\n\nCheck: substituting back, both sides "
         "equal $12$, as required.", "alt"),
        ("minerva", "{body}\n\nFinal Answer: The final answer is ${a}$. I hope it is correct.", "alt"),
        ("minerva_display_after_box", "{body}\n\nSo $M = \\boxed{{{a}}}$.\n\nFinal Answer: The final answer is "
         "\\[ {a}. \\] I hope it is correct.", "alt"),
        ("answer_is_clause", "{body}\n\nThe answer is ${a}$, since the other cases were ruled out above.", "alt"),
        ("truncated", "{body}\n\nFrom the second equation we find $t = {g}$, and substituting this into the first "
         "equation gives", "trap"),
        ("prose_restatement", "{body}\n\nSo the length of $\\overline{{AB}}$ is ${a}$, which matches the "
         "diagram.", "alt"),
        ("prose_plain_number", "{body}\n\nTherefore, the perimeter is {a_plain} centimeters.", "alt"),
        ("prose_heading", "{body}\n\n### Conclusion\nThe value of $x$ is ${a}$.", "alt"),
    ],
    "heldout": [
        ("prose", "{body}\n\nConsequently, the minimum value of the expression equals ${a}$.", "alt"),
        ("prose", "{body}\n\nWe conclude that the number of such arrangements is ${a}$.", "alt"),
        ("prose_equation", "{body}\n\nIn conclusion, $f(5) = {a}$.", "alt"),
        ("prose", "{body}\n\nSo, the requested quantity comes out to be \\({a}\\).", "alt"),
        ("prose_display", "{body}\n\nPutting it all together:\n$$\n{sym} = {a}\n$$\nThat completes the "
         "solution.", "alt"),
        ("prose_bold", "{body}\n\nThe final result: **${a}$**", "alt"),
        ("boxed_then_text", "{body}\n\nThus our final answer is $\\boxed{{{a}}}$. To double-check, we computed "
         "the two smaller cases as well, and they agree.", "alt"),
        ("prose_right_mid_wrong_final", "{body}\n\nIt is tempting to stop at ${g}$ here. However, we double "
         "counted the corner squares, so the correct total is ${a}$.", "trap"),
        ("prose_wrong_mid_right_final", "{body}\n\nIt is tempting to stop at ${x}$ here. However, we double "
         "counted the corner squares, so the correct total is ${a}$.", "mirror"),
        ("boxed_intermediate_then_wrong_final", "{body}\n\nThis yields $c = \\boxed{{{g}}}$ for the constant "
         "term.\n\nHence the sum of all the coefficients is ${a}$.", "trap"),
        ("answer_colon", "{body}\n\n**Answer:** ${a}$", "alt"),
        ("minerva_boxed", "{body}\n\nFinal Answer: The final answer is $\\boxed{{{a}}}$. I hope it is "
         "correct.", "alt"),
        ("prose_units", "{body}\n\nTaking the positive root and simplifying, we find that the length is ${a}$ "
         "units, as claimed.", "alt"),
        ("truncated", "{body}\n\nNow we plug $n = {g}$ into the formula and then", "trap"),
        ("boxed_display_fluff", "{body}\n\nTherefore the value of the expression is\n\n\\[\\boxed{{{a}}}\\]\n\n"
         "Let me know if anything is unclear!", "alt"),
        ("prose_short", "{body}\n\nThe solution is ${a}$.", "alt"),
        ("answer_colon_displaystyle", "{body}\n\nOur answer: $\\displaystyle {a}$.", "alt"),
        ("prose_equation", "{body}\n\nHence $a + b + c = {a}$, which is what we wanted.", "alt"),
    ],
}  # fmt: skip

SYMBOLS = ["x^3", "f(2)", "a+b", "m", "S"]
WORD_SWAPS = {
    "Evelyn": "Carla", "east": "west", "even": "odd", "odd": "even", "neither": "odd", "ellipse": "hyperbola",
    "parabola": "ellipse", "Navin": "Luka", "Tuesday": "Thursday", "Dana": "Ella", "p - q": "p + q",
    "\\pi": "2\\pi", "\\cot x": "\\tan x",
}  # fmt: skip


def written(gold: str, style: int) -> str:
    """The gold value as a model might write it: the same value, another habit of notation (by `style`)."""
    s = re.sub(r"\\[dtc]frac", r"\\frac", gold.strip())
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)  # \frac43
    s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)  # \frac9{19}
    s = re.sub(r"\\frac\s*(\{[^{}]*\})\s*(\d)", r"\\frac\1{\2}", s)  # \frac{270}7
    s = re.sub(r"\\sqrt\s*(\d)", r"\\sqrt{\1}", s)
    s = re.sub(r"\\left\s*([(\[])", r"\1", s)
    s = re.sub(r"\\right\s*([)\]])", r"\1", s)
    s = s.replace(",\\! ", ",").replace(",\\!", ",").removeprefix("x \\in ")
    if style % 2 and re.fullmatch(r"(\\\$)?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if style % 2:
        s = re.sub(r"\s*\\(?:text|mbox)\{\s+[^{}]*\}(\^2)?$", "", s).removeprefix("\\$")  # unit, currency
    if style % 3 == 1:
        s = s.replace("\\frac", "\\dfrac")
    if style % 4 == 3:
        s = s.replace("^\\circ", "^{\\circ}")
    choice = re.fullmatch(r"\\text\{\(([A-E])\)\}|\(\\text\{([A-E])\}\)", s)
    if choice:
        s = ["(X)", "X", "\\text{(X)}"][style % 3].replace("X", choice[1] or choice[2])
    return s


def wrong(gold: str, step: int = 0) -> str:
    """Another value: a word swapped, a choice letter moved on, or one digit changed (the `step`-th)."""
    for word, other in WORD_SWAPS.items():
        if re.fullmatch(rf"(\\text\{{)?{re.escape(word)}\}}?", gold):
            return gold.replace(word, other)
    letter = re.search(r"\(([A-E])\)|\{([A-E])\}", gold)
    if letter:
        found = letter[1] or letter[2]
        return gold.replace(found, "ABCDEA"["ABCDE".index(found) + 1], 1)
    digits = [m.start() for m in re.finditer(r"\d", gold)]
    if not digits:
        return "2" + gold if step == 0 else gold + "+1"
    i = digits[step % len(digits)]
    d = int(gold[i])
    return gold[:i] + str(d + 1 if d < 9 else 8) + gold[i + 1 :]


def single_expression(gold: str) -> bool:
    return not re.search(r"=|,|\\text|\\mbox|\\cup|\\in\b|\\pm|^[(\[]", gold)


def plain_number(value: str) -> bool:
    return re.fullmatch(r"-?\d[\d,]*(\.\d+)?|-?\.\d+", value) is not None


def fill(template: tuple[str, str, str], gold: str, i: int, split: str) -> dict | None:
    """One row from a template and a gold answer; None where the template does not suit the gold."""
    kind, text, mode = template
    label = mode == "mirror" or (mode == "alt" and i % 2 == 0)
    final = written(gold, i) if label else written(wrong(gold), i)
    equation = "{sym}" in text or kind == "prose_equation"  # "Hence $a + b + c = {a}$": a single value only
    if (equation and not single_expression(gold)) or ("{a_plain}" in text and not plain_number(final)):
        return None
    bold = final if plain_number(final) else f"${final}$"
    values = dict(a=final, a_bold=bold, a_plain=final, g=written(gold, i + 1), x=written(wrong(gold, 1), i + 1))
    body = BODIES[split][i % len(BODIES[split])]
    solution = text.format(body=body, sym=SYMBOLS[i % len(SYMBOLS)], **values)
    return {"gold": gold, "solution": solution, "label": label, "kind": kind}


def templated(split: str, golds: list[dict]) -> list[dict]:
    rows, templates = [], TEMPLATES[split]
    for i, g in enumerate(golds):
        for shift in range(len(templates)):  # the next template that suits this gold
            row = fill(templates[(i + shift) % len(templates)], g["answer"], i // len(templates) + shift, split)
            if row:
                rows.append({**row, "source": g["source"] + " (templated ending)"})
                break
    return rows


SPLITS = ("tune", "heldout", "fresh", "untouched", "families")  # fresh, untouched, families: hand-written only


def build(split: str) -> list[dict]:
    """The rows of one part: templated endings for its gold answers, then its hand-written rows."""
    golds = [g for g in map(json.loads, open(HERE / "golds.jsonl")) if g["split"] == split]
    rows = templated(split, golds) if split in TEMPLATES else []
    return rows + [json.loads(line) for line in open(HERE / f"hand_{split}.jsonl")]


def main() -> None:
    for split in SPLITS:
        rows = build(split)
        with open(HERE / f"{split}.jsonl", "w") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows)
        print(f"{split}: {len(rows)} rows, {sum(r['label'] for r in rows)} labelled correct")


if __name__ == "__main__":
    main()
