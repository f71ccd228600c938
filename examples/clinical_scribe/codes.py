"""The local code table: the only ICD-10-CM and CPT codes the coder may suggest.

The table is ``codes.csv`` next to this file (columns ``system,code,description``).
Replace it with your organisation's own list: the coder's output schema is
built from it, so a model that obeys the schema can only pick codes listed
there, and every suggestion is checked against it again in code.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

CODES_FILE = Path(__file__).with_name("codes.csv")
ICD10CM = "ICD-10-CM"
CPT = "CPT"
SYSTEMS = (ICD10CM, CPT)
_COLUMNS = ["system", "code", "description"]


@dataclass(frozen=True, slots=True)
class Code:
    """One billable code: its system (ICD-10-CM or CPT), the code and what it means."""

    system: str
    code: str
    description: str

    def line(self) -> str:
        """The code as one line of the coder's instructions."""
        return f"{self.code} ({self.system}): {self.description}"


@dataclass(frozen=True, slots=True)
class CodeTable:
    """The codes of the table, in file order, with lookup by code."""

    codes: tuple[Code, ...]
    _by_code: Mapping[str, Code] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.codes:
            raise ValueError("the code table is empty")
        by_code = {code.code: code for code in self.codes}
        if len(by_code) != len(self.codes):
            counts = Counter(code.code for code in self.codes)
            twice = sorted(code for code, count in counts.items() if count > 1)
            raise ValueError(f"the code table lists {', '.join(twice)} more than once")
        object.__setattr__(self, "_by_code", by_code)

    @classmethod
    def load(cls, path: Path = CODES_FILE) -> CodeTable:
        """Read a ``system,code,description`` CSV; ``ValueError`` naming the file and line."""
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header != _COLUMNS:
                raise ValueError(f"{path}: the first line must be {','.join(_COLUMNS)}")
            codes = [_row(path, reader.line_num, row) for row in reader if any(row)]
        try:
            return cls(tuple(codes))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def get(self, code: str) -> Code | None:
        """The table's entry for ``code`` (exact match), or None."""
        return self._by_code.get(code)

    def ids(self, system: str | None = None) -> tuple[str, ...]:
        """Every code of the table (of one ``system`` if given), in file order."""
        return tuple(c.code for c in self.codes if system is None or c.system == system)

    def render(self) -> str:
        """The table as text for a prompt, one code per line, grouped by system."""
        return "\n".join(c.line() for system in SYSTEMS for c in self.codes if c.system == system)


def _row(path: Path, line: int, row: list[str]) -> Code:
    if len(row) != len(_COLUMNS) or not all(cell.strip() for cell in row):
        raise ValueError(f"{path}:{line}: expected three non-empty cells: {','.join(_COLUMNS)}")
    system, code, description = (cell.strip() for cell in row)
    if system not in SYSTEMS:
        raise ValueError(
            f"{path}:{line}: system must be one of {', '.join(SYSTEMS)}, not {system!r}"
        )
    return Code(system, code, description)
