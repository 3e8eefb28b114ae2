"""The contracts that code and tests cite live in the repository: every `docs/contracts.md §N` named in src/, tests/
or benchmarks/ is a section of docs/contracts.md, and the README links to it."""

from __future__ import annotations

import re
from pathlib import Path

from _train_utils import ROOT

CONTRACTS = ROOT / "docs" / "contracts.md"
CITATION = re.compile(r"docs/contracts\.md (§\d+(?:, §\d+)*)")  # "docs/contracts.md §2, §7" cites both


def cited(text: str) -> set[str]:
    return {number for group in CITATION.findall(text) for number in re.findall(r"§\d+", group)}


def citations() -> dict[str, set[Path]]:
    """{"§N": the files that cite it} over the package, the tests and the benchmarks."""
    found: dict[str, set[Path]] = {}
    for folder in ("src", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".txt", ".md") and path.is_file():
                for number in cited(path.read_text(errors="replace")):
                    found.setdefault(number, set()).add(path.relative_to(ROOT))
    return found


def sections() -> set[str]:
    return set(re.findall(r"^## (§\d+)\. ", CONTRACTS.read_text(), flags=re.M))


def test_citations_are_read_in_lists_and_across_a_docstring():
    assert cited("the contract (docs/contracts.md §2, §7).\nand docs/contracts.md §5: ...") == {"§2", "§5", "§7"}
    assert cited("docs/contracts.md") == set() and cited("SPEC §4") == set()


def test_every_cited_section_of_the_contracts_exists():
    found = citations()
    assert len(found) >= 8, f"the contracts are cited in code and tests: {sorted(found)}"  # the scan finds them
    missing = {number: sorted(map(str, files)) for number, files in found.items() if number not in sections()}
    assert not missing, f"cited but not a section ('## §N. Title') of {CONTRACTS}: {missing}"


def test_no_citation_of_a_document_the_repository_lacks():
    stale = [str(p.relative_to(ROOT)) for folder in ("src", "tests") for p in (ROOT / folder).rglob("*.py")
             if p != Path(__file__) and "SPEC §" in p.read_text()]  # fmt: skip
    assert not stale, f"cite docs/contracts.md §N instead of SPEC §N: {stale}"


def test_readme_links_the_contracts():
    assert "(docs/contracts.md)" in (ROOT / "README.md").read_text()
