"""Whether a problem asks for its answer's values in a given order ("Enter the roots in increasing order").

`asks_order(question)`: True when the question asks for the values in order: "in increasing / decreasing /
ascending / descending / numerical / alphabetical order", "in the order ...", "in that order", "in order",
"from least to greatest" (and the like), "an ordered list". Then a list answer is compared item by item
(`judge.py`); otherwise a bare list is compared as a set, as the MATH dataset's lists of solutions mostly mean.

Not an order: "in order to / for / that", "order of operations", a group's "order", "in any order", "in either
order", "order does not matter". "Ordered pair / triple" is not read here: MATH writes those answers as tuples
`(a, b)`, which math-verify already compares in order; a list *of* ordered pairs may come in any order.
"""

from __future__ import annotations

import functools
import re

_EXTREMES = r"(?:least|smallest|lowest|largest|greatest|highest|biggest|most|fewest)"
_ASKS = re.compile(
    r"\bin\s+(?:(?:strictly\s+)?(?:increasing|decreasing|ascending|descending|non-?increasing|non-?decreasing|"
    r"numerical|numeric|alphabetical|lexicographic|reverse|sorted|chronological)\s+)order\b"
    r"|\bin\s+(?:the|that|this)\s+(?:same\s+|given\s+|following\s+|listed\s+)?order\b(?!\s+of\s+operations)"
    r"|\bin\s+order\b(?!\s+(?:to|for|that)\b)"
    rf"|\bfrom\s+(?:the\s+)?{_EXTREMES}\s+to\s+(?:the\s+)?{_EXTREMES}\b"
    r"|\bordered\s+(?:list|sequence)\b",
    re.IGNORECASE,
)
_ANY_ORDER = re.compile(
    r"\b(?:in\s+(?:any|either|no\s+particular|arbitrary)\s+order|order\s+(?:does\s+not|doesn't)\s+matter)\b",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)
def asks_order(question: str | None) -> bool:
    """Does the question ask for the values of its answer in a given order? False without a question."""
    if not question:
        return False
    return bool(_ASKS.search(question)) and not _ANY_ORDER.search(question)
