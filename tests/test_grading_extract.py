"""Where a solution states its final answer (`grading.extract`, `grading.prose`): the last marker, else the
concluding statement; the route it came by; `--require-marker`."""

from __future__ import annotations

import pytest

from sftkit.grading.extract import MARKER, PROSE, extract_answer, final_answer
from sftkit.grading.judge import CORRECT, judge

W = "The triangle has legs $6$ and $8$, so its hypotenuse is $10$ and $6 + 8 = 14$.\n\n"  # other values first

# (solution, the final answer's text, its route)
ROUTES = [
    # the answer stated only in prose, no marker
    (W + "Therefore, the area of kite $ABCD$ is $75$ square units.", "75", PROSE),
    (W + "Thus, the number on the card that was removed is \\(45\\).", "45", PROSE),
    (W + "Therefore, \\(x^3 = 12\\).", "x^3 = 12", PROSE),
    (W + "So the smallest such value is **6**.", "6", PROSE),
    (W + "So the roots are $1$ and $-2$.", "1, -2", PROSE),
    (W + "In total, there are 18 home games.", "18", PROSE),
    (W + "The probability is $\\frac{1}{3}$, which is about $33.3\\%$.", "\\frac{1}{3}", PROSE),
    (W + "The probability is $\\frac{7}{20}$, or $35\\%$.", "\\frac{7}{20}", PROSE),
    (W + "So there are $10 - 1 = 9$ numbers that are relatively prime to $28$.", "10 - 1 = 9", PROSE),
    (W + "The remainder when $2^{100}$ is divided by $7$ is $2$.", "2", PROSE),
    (W + "So 6 of the 10 numbers qualify.", "6", PROSE),
    (W + "So the correct choice is (C).", "(C)", PROSE),
    (W + "So $\\log_x 8 = 3$, which means $x = 2$.", "x = 2", PROSE),
    (W + "The distinct primes are $3$, $5$ and $7$, and $3 + 5 + 7 = 15$.", "3 + 5 + 7 = 15", PROSE),
    (W + "Hence the required value is $12$.\n\nI hope this helps! Let me know if you have questions.", "12", PROSE),
    (W + "Thus, the value of $k$ is $-\\frac{1}{2}$. $\\blacksquare$", "-\\frac{1}{2}", PROSE),
    (W + "So the matrix is\n\\[\n\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}.\n\\]", None, PROSE),
    # markers, read better than before
    (W + "\\[ \\boxed{A,D} \\]", "A,D", MARKER),
    (
        W + "So $M = \\boxed{\\begin{pmatrix}0&1\\\\1&0\\end{pmatrix}}$.\n\nFinal Answer: The final answer is "
        "\\[ \\begin{pmatrix}0&1\\\\1&0\\end{pmatrix}. \\] I hope it is correct.",
        "\\[ \\begin{pmatrix}0&1\\\\1&0\\end{pmatrix}. \\]",
        MARKER,
    ),
    (W + "Part (a): the smaller root is $\\boxed{3}$.\nPart (b): the larger root is $\\boxed{5}$.", "3, 5", MARKER),
    (W + "The answer is $\\frac{1}{2}$, since the other cases fail.", "$\\frac{1}{2}$", MARKER),
    (W + "The answer is 12, which is even.", "12", MARKER),
    (W + "The answer is $\\boxed{12}$.\n\nCheck: both sides equal $7$, as required.", "12", MARKER),
    (W + "$\\boxed{5}$\n\nSo the number of ways is $5$.", "5", MARKER),  # the same value, stated again
    # a box, then a statement that plainly concludes with another value: the box was an intermediate result
    (W + "This gives $k = \\boxed{3}$.\n\nTherefore, the total is $15$.", "15", PROSE),
    # ... unless the statement mentions the boxed value: it elaborates on it
    (W + "$\\boxed{5}$\n\nSo, the side length is $5$ and the area is $25$.", "5", MARKER),
    (W + "The answer is $\\boxed{B}$.\n\nSo the correct option is (B), that is $3\\sqrt{2}$.", "B", MARKER),
    # no final answer
    (W + "From the second equation we find $t = 4$, and substituting this into the first equation gives", None, None),
    (W + "So we need $20$ more tiles, and then the wall is finished. Let me also check the corn", None, None),
    (W + "The answer is \\boxed{7", None, None),  # a box never closed
    ("", None, None),
]


@pytest.mark.parametrize("text, answer, route", ROUTES, ids=[f"{i}:{c[0][-40:]!r}" for i, c in enumerate(ROUTES)])
def test_final_answer_and_route(text: str, answer: str | None, route: str | None):
    found = final_answer(text)
    assert found.route == route, found
    if answer is not None or route is None:
        assert found.text == answer


def test_unfinished_last_sentence_that_ends_on_its_answer_is_finished():
    assert final_answer(W + "Therefore, the perimeter is 12 centimeters").text == "12"
    assert final_answer(W + "so the number in the box must be $4$").text == "4"


def test_require_marker_reads_markers_only():
    prose = W + "Therefore, the area is $75$ square units."
    assert final_answer(prose, require_marker=True) == (None, None)
    boxed_then_prose = W + "This gives $k = \\boxed{3}$.\n\nTherefore, the total is $15$."
    assert final_answer(boxed_then_prose, require_marker=True) == ("3", MARKER)
    assert extract_answer(prose) is None and extract_answer(boxed_then_prose) == "3"


@pytest.mark.parametrize(
    "text, gold, correct",
    [
        (W + "Therefore, the area of kite $ABCD$ is $75$ square units.", "75", True),
        (W + "Therefore, the area of kite $ABCD$ is $150$ square units.", "75", False),
        (W + "Therefore, \\(x^3 = 12\\).", "12", True),
        (W + "So the roots are $1$ and $-2$.", "-2,1", True),
        (W + "So the roots are $1$ and $-3$.", "-2,1", False),
        (W + "At first we might guess $75$, but we double counted.\n\nSo the area is $60$.", "75", False),
        (W + "This gives $k = \\boxed{75}$.\n\nTherefore, the total is $15$.", "75", False),
        (W + "\\[ \\boxed{A,D} \\]", "\\text{A,D}", True),
        (W + "Part (a): $\\boxed{3}$. Part (b): $\\boxed{5}$.", "3, 5", True),
        (W + "Part (a): $\\boxed{3}$. Part (b): $\\boxed{6}$.", "3, 5", False),
        (W + "Final Answer: The final answer is \\[ \\begin{pmatrix}0&1\\\\1&0\\end{pmatrix}. \\] I hope it is "
         "correct.", "\\begin{pmatrix}0&1\\\\1&0\\end{pmatrix}", True),
        (W + "Recognizing the expansion, it equals $(101-1)^3 = 100^3 = 1{,}000{,}000$.", "1000000", True),
        (W + "So there are $10 - 1 = 9$ numbers that are relatively prime to $28$.", "9", True),
    ],
)  # fmt: skip
def test_graded_as_a_careful_reader_would(text: str, gold: str, correct: bool):
    assert (judge(gold, final_answer(text).text) == CORRECT) == correct, final_answer(text)


def test_long_solutions_are_read_from_their_end_only():
    """The concluding statement is read from the last 1,500 characters (bounded time), starting on a line."""
    filler = "We compute $1 + 1 = 2$ once more, to be sure.\n" * 2000
    assert final_answer(filler + "Therefore, the area is $75$.").text == "75"
    assert final_answer(filler + "The answer is \\boxed{75}.").text == "75"


@pytest.mark.parametrize(
    "text",
    [
        "$1$" + " " * 5000 + "x$2$.",  # a long gap between two values
        "$1$" + ", " * 3000 + "x$2$.",
        "So the value is $5$ " + "a" * 5000,
        "\\(" * 3000,
        "\\boxed{1}\n" * 20000,
        "$1$, which " * 2000 + "is $2$.",
        "The answer is " + "$" * 20000,
        "The answer is correct. " * 3000,  # word markers that state no answer, each skipped
    ],
    ids=["spaces", "commas", "long word", "openers", "boxes", "which", "dollars", "no answer"],
)
def test_time_is_bounded_on_pathological_text(text: str):
    """Extraction runs in the parent process, outside the time-limited workers: no regex may blow up."""
    import time

    start = time.perf_counter()
    judge("1", final_answer(text).text)
    assert time.perf_counter() - start < 1.0


# Grader II (issue 23): each rule with a case it must read and one it must not over-read. (text, gold, correct)
RULES = {
    "empty box is not part of the answer": [
        (W + "Putting the answer within \\boxed{}, we have \\boxed{(2, 32), (8, 18)}.", "(2,32),(8,18)", True),
        (W + "Putting the answer within \\boxed{}, we have \\boxed{(2, 32), (8, 19)}.", "(2,32),(8,18)", False),
    ],
    "a box after 'Wait' replaces the first": [
        (W + "So $\\boxed{50}$. Wait, this isn't right, each pair counts twice: $\\boxed{100}$.", "100", True),
        (W + "So $\\boxed{100}$. Wait, this isn't right, the middle counts once: $\\boxed{99}$.", "100", False),
        (W + "Part (a): $\\boxed{3}$. Part (b): $\\boxed{5}$.", "3, 5", True),  # parts are still joined
    ],
    "a Markdown '####' heading is no GSM8K marker": [
        (W + "#### For T = 3:\nThe count is 7.\n\n#### For T = 4:\nSo the total is $18$.", "18", True),
        (W + "#### For T = 3:\nThe count is 7.\n\n#### For T = 4:\nSo the total is $17$.", "18", False),
        (W + "#### 18", "18", True),
    ],
    "a word marker followed by a sentence gives the sentence's answer": [
        (W + "Final Answer: The largest $n$ is 34.", "34", True),
        (W + "Final Answer: The largest $n$ is 35.", "34", False),
    ],
    "text after an end-of-turn token is not the reply": [
        (W + "Therefore, the probability is 2/3. <|im_start|>user\nNext question: what is 5?", "\\frac{2}{3}", True),
        (W + "The final answer is $\\boxed{7}$<|eot_id|>", "7", True),
        (W + "So the answer is $60$.</s>", "120", False),
        (W + "<|im_end|>", "14", False),  # nothing after the turn: the reply ends at the token, no marker
    ],
    "the reply after a thinking block": [
        ("<think>Maybe 5? No: 2x + 3 = 15 gives 6.</think>\n\n$\\boxed{6}$", "6", True),
        ("<think>It is 6, the answer is \\boxed{6}.</think>\n\nThe answer is $\\boxed{5}$.", "6", False),
    ],
    "a distant verb does not make a name the answer": [
        (W + "So the maximum is **13**, occurring when the angle is measured relative to $x$.", "13", True),
        (W + "So the maximum value comes out to be $E$.", "\\text{(E)}", True),
    ],
    "'equal to' inside a relative clause is no main verb": [
        (W + "So there are **19** integers that have at least one digit equal to 6.", "19", True),
        (W + "So there are **19** integers that have at least one digit equal to 6.", "6", False),
    ],
    "whitespace alone does not join values": [
        (W + "So the answer is $5$ $7$.", "5, 7", False),
        (W + "So the roots are $5$ and $7$.", "5, 7", True),
    ],
    "trailing commas of math spans": [
        (W + "So the solutions are $-1,$ $0,$ and $1$.", "-1, 0, 1", True),
        (W + "So the solutions are $-1,$ $0,$ and $2$.", "-1, 0, 1", False),
    ],
    "a negated verb is not the statement": [
        (W + "So the number is not 10, it is 1,000.99.", "1000.99", True),
        (W + "So the number is not 10, it is 1,000.99.", "10", False),
    ],
    "a unit glued to a number": [
        (W + "So the area is 1,000.99m².", "1000.99", True),
        (W + "So the area is 1,000.98m².", "1000.99", False),
    ],
    "an elaboration after the conclusion": [
        (W + "Therefore, the sum is $5$. This is because $2 + 3 = 5$ and the last term is $7$.", "5", True),
        (W + "Therefore, the sum is $5$. This is because $2 + 3 = 5$ and the last term is $7$.", "7", False),
        (W + "Therefore, the first sum is $5$. Doubling it, the total is $10$.", "10", True),  # not an elaboration
    ],
    "Unicode square roots": [
        (W + "So the side is √3.", "\\sqrt{3}", True),
        (W + "So the side is √3.", "3", False),
    ],
    "answer-only completions": [
        ("\\frac{10}{9}", "10/9", True),
        (".4", "0.4", True),
        ("$E$", "\\text{E}", True),
        ("\\frac{10}{9}", "9/10", False),
        ("Let me think about it", "5", False),
    ],
    "only subordinate clauses": [
        ("When multiplying by the identity: $\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}\\begin{pmatrix}2&0\\\\0&2\\end"
         "{pmatrix}$", "\\begin{pmatrix}2&0\\\\0&2\\end{pmatrix}", True),
        ("When multiplying by the identity: $\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}\\begin{pmatrix}2&0\\\\0&2\\end"
         "{pmatrix}$", "\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}", False),
    ],
    "a number in words right after the verb of a concluding statement": [
        (W + "Thus there are three such primes, namely $11$, $13$ and $17$.", "3", True),
        (W + "Thus there are three such primes, namely $11$, $13$ and $17$.", "11, 13, 17", False),
        (W + "Hence the number of solutions is exactly Twelve.", "12", True),
        (W + "Three of them are odd, so the answer is 5.", "5", True),  # the number in words is not the answer
        (W + "Three of them are odd, so the total is $5$.", "5", True),
        (W + "Thus $x = 5$ in all three cases.", "5", True),  # not after the verb: the value stays the answer
        (W + "So the total is $12$.\n\nWe have checked all three cases.", "12", True),  # not a conclusion
        (W + "So the total is $12$.\n\nWe have checked all three cases.", "3", False),
        (W + "So the product is two times $6$.", "2", False),  # "two times": not a value
        (W + "So there are two cases: $x = 4$ and $x = 9$.", "2", False),  # a count that introduces a list
    ],
    "'namely' lists what was named before it": [
        (W + "So the total is the sum of the roots, namely $5$.", "5", True),  # nothing before it: its value
        (W + "So the primes are $11$ and $13$, namely the ones below $15$.", "11, 13", True),
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    "text, gold, correct",
    [c for cases in RULES.values() for c in cases],
    ids=[f"{r}:{i}" for r, cs in RULES.items() for i in range(len(cs))],
)
def test_grader_ii_rules(text: str, gold: str, correct: bool):
    from sftkit.grading.inputs import stated_answer

    assert (judge(gold, stated_answer(text)[0]) == CORRECT) == correct, stated_answer(text)


@pytest.mark.parametrize(  # rules written from real_tune misses (tests/assets/grading/real, issue 23)
    "text, answer",
    [
        # a numbered step heading ("**5. FORMAT:**") then no answer: no answer, not "5"
        ("**4. VERIFY:**\n\nWe need x.\n\n**5. FORMAT:**\n\nWe can simplify and solve for x.\n\nLet me know!", None),
        ("**5. FORMAT:**\n\nThe number of battalions is **5 * 45 = 225**.", "225"),  # the heading, then an answer
        ("First we count.\n\n5. The total is 12.", "12"),  # a numbered step that states its answer
        # boxes joined by "=" state one value: the last box; boxes of separate parts stay joined
        ("**5. FORMAT:**\n\n$\\boxed{4\\$} = \\boxed{6}$", "6"),
        ("So $a = \\boxed{3}$ and $b = \\boxed{4}$", "3, 4"),
        ("Part (a) $\\boxed{3}$, part (b) $\\boxed{5}$", "3, 5"),
        # second round: a word marker's closing "**" is not the answer; the sentence after it is read, its bold value
        # first
        ("**Answer:** The largest angle in the quadrilateral measures **120 degrees**.", "120 degrees"),
        ("**Answer:** 7", "7"),
        ("*Answer:* 7", "7"),
        ("The answer is **7**.", "**7**"),  # the bold opens after the marker: the answer's own
        ("**Answer:** For $x = 60$, the largest angle is **120**, twice $x$.", "120"),
        ("**Answer:** The legs are **3** and **4**.", "3, 4"),  # two bold values: the statement is read
        # a bold number right after the verb, before a colon that lists details
        # with the values it counts (the judge compares one of the two, by the gold: test_grading_numbers.py)
        (
            "The graph of the parabola has **two** y-intercepts: (0, 2 + √5) and (0, 2 - √5).",
            "2 (namely (0, 2 + √5), (0, 2 - √5))",
        ),
        ("So there are exactly **3** solutions: $x = 1$, $x = 2$ and $x = 4$.", "3 (namely x = 1, x = 2, x = 4)"),
        ("So there are two cases: $x = 4$ and $x = 9$.", "x = 4, x = 9"),  # not bold
        ("In **two** cases: $x = 4$ and $x = 9$.", "x = 4, x = 9"),  # not after a verb
        ("So the number of intercepts is **two**.", "2"),  # a bold number in words is a value
        # a box holding a sentence gives the sentence's answer; a value with a unit in a box stays whole
        ("**5. FORMAT:**\n\n\\boxed{Jim walks 200 feet less than Martha.}", "200"),
        ("$\\boxed{The area is $2\\sqrt{5}$ square units.}$", "2\\sqrt{5}"),
        ("$\\boxed{2\\sqrt{5} \\text{ square units}}$", "2\\sqrt{5} \\text{ square units}"),
        ("$\\boxed{\\text{No solution}}$", "\\text{No solution}"),
        # "the final answer is" followed by words that state no answer is no marker: the box before it stands
        ("So $\\boxed{7}$.\n\n**4. VERIFY:** The final answer is consistent with the given information.", "7"),
        ("So $\\boxed{7}$.\n\nThe answer is correct as shown above.", "7"),
        ("So $\\boxed{7}$.\n\nThe final answer is correct: $8$.", "correct: $8$"),  # a value follows: a marker
        ("So $\\boxed{7}$.\n\nThe final answer is Monday.", "Monday"),
    ],
)
def test_real_solution_endings(text: str, answer: str | None):
    assert final_answer(text).text == answer


# Third round (issue 23, a review's cases): the second round's rules must not accept wrong solutions. (text, gold,
# correct), judged without and with a question.
THIRD_ROUND = {
    "a marker's one bold value, not when the sentence negates, contrasts or states another number": [
        ("**Answer:** The angle measures **120 degrees**.", "120", True),
        ("**Answer:** The angle measures **120 degrees**.", "60", False),
        ("**Answer:** The angle measures **120 degrees**, not **60 degrees**.", "60", False),
        ("**Answer:** The angle is not **60 degrees**; it measures 120 degrees.", "60", False),
        ("**Answer:** The angle is not **60 degrees**; it measures 120 degrees.", "120", True),
        ("**Answer:** Since **60** is too small, the angle is 120.", "60", False),
        ("**Answer:** Since **60** is too small, the angle is 120.", "120", True),
        ("**Answer:** It is not **12**: the total is 15.", "12", False),
        ("**Answer:** It is not **12**: the total is 15.", "15", True),
        ("**Final Answer:** We previously got **12** but the correct total is 15.", "12", False),
        ("**Final Answer:** We previously got **12** but the correct total is 15.", "15", True),
        ("**Answer:** Instead of **12**, the total is 15.", "12", False),
        ("**Answer:** Instead of **12**, the total is 15.", "15", True),
        ("**Answer:** Rather than **12**, the total is 15.", "12", False),
        ("**Answer:** The area is **12** square units, and the perimeter is 14.", "14", False),  # two values
        ("**Answer:** The area is **12** square units, and the perimeter is 14.", "12", False),
        ("**Answer:** **7** apples (not **4**).", "4", False),
        ("**Answer:** **7** apples (not **4**).", "7", True),
        ("**Answer:** The two numbers are **3** and **5**.", "3, 5", True),
        ("**Answer:** The two numbers are **3** and **5**.", "3", False),
    ],
    "a box holding a sentence: its answer only where it states one plainly": [
        ("So $\\boxed{\\text{The sum cannot be } 12}$.", "12", False),
        ("We conclude $\\boxed{No, 7 is not the number of ways; there are 9}$", "7", False),
        ("Hence $\\boxed{x = 3 \\text{ is not a solution, so } x = 5}$", "3", False),
        ("We compute. $\\boxed{There are 5 red and 7 blue balls}$", "5", False),
        ("We compute. $\\boxed{There are 5 red and 7 blue balls}$", "7", False),
        ("We compute. $\\boxed{Martha walks 400 feet and Jim walks 200 feet less.}$", "400", False),
        ("We compute. $\\boxed{Martha walks 400 feet and Jim walks 200 feet less.}$", "200", False),
        ("We compute. $\\boxed{Jim walks 200 feet less than Martha.}$", "200", True),
        ("We compute. $\\boxed{Jim walks 200 feet less than Martha.}$", "100", False),
        ("We compute. $\\boxed{The largest n is 34}$", "34", True),
        ("$\\boxed{The answer is 12, not 15}$", "15", False),
    ],
    "'the final answer is' states no answer only before a few words with no value": [
        ("So $x=\\boxed{7}$. The final answer is consistent with the given information.", "7", True),
        ("So $x=\\boxed{7}$. The final answer is consistent with the given information.", "8", False),
        ("We get $\\boxed{9}$. Therefore, the answer is correct.", "9", True),
        ("We get $\\boxed{9}$. The answer is verified.", "9", True),
        ("We get $\\boxed{9}$. The final answer is reasonable as expected.", "9", False),  # not one phrase
        ("First guess $\\boxed{10}$. Recheck: 3 times 4 is twelve. The answer is indeed twelve.", "10", False),
        ("First guess $\\boxed{10}$. Wait, that is wrong. The answer is also wrong, recompute later.", "10", False),
        ("So $\\boxed{10}$. But the final answer is correct only if we subtract two, giving eight.", "10", False),
        ("We get $\\boxed{9}$. Hence the final answer is below: eight.", "9", False),
        ("We have $\\boxed{9}$. The final answer is the same: 8.", "9", False),
        ("The final answer is the same as the number of apples, which is 9.", "9", True),
        ("The final answer is $\\boxed{12}$. I hope it is correct.", "12", True),
    ],
}  # fmt: skip


@pytest.mark.parametrize("question", [None, "How many apples are there?"])
@pytest.mark.parametrize(
    "text, gold, correct",
    [c for cases in THIRD_ROUND.values() for c in cases],
    ids=[f"{r[:40]}:{i}" for r, cs in THIRD_ROUND.items() for i in range(len(cs))],
)
def test_third_round_rules_accept_no_wrong_solution(text: str, gold: str, correct: bool, question: str | None):
    assert (judge(gold, final_answer(text).text, question) == CORRECT) == correct, final_answer(text)
