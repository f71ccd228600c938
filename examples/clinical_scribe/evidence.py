"""Deterministic checks of the coder's suggestions: table membership and quoted evidence.

A model can be asked to quote its evidence, but only code can make sure the
quote is really in the transcript. Everything here is plain Python with no
model call, so its verdicts are reproducible and cost nothing; the reviewer
agent gets them as facts and cannot overrule them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .codes import ICD10CM, CodeTable

# A quote shorter than this many words proves little ("yes", "no fever").
MIN_EVIDENCE_WORDS = 3
# "Clinician:", "Patient:", "Dr. Lee:" -- a short label before a colon at the start of a line.
_SPEAKER = re.compile(r"^\s*[A-Za-z][A-Za-z .'-]{0,24}:\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
# Abbreviations after which a full stop does not end the sentence.
_ABBREVIATIONS = ("Dr.", "Mr.", "Ms.", "Mrs.", "St.", "vs.", "e.g.", "i.e.", "approx.")
_NOT_WORD = re.compile(r"[^0-9a-z]+")

NOT_IN_TABLE = "code is not in the code table"
NO_EVIDENCE = "no evidence sentence given"
EVIDENCE_TOO_SHORT = f"evidence is shorter than {MIN_EVIDENCE_WORDS} words"
EVIDENCE_NOT_FOUND = "evidence sentence does not occur in the transcript"
EVIDENCE_IS_QUESTION = "evidence is a question, which documents nothing by itself"
DUPLICATE = "code suggested more than once"
NO_DIAGNOSIS = "no ICD-10-CM diagnosis code was suggested"
UNREADABLE = "the coder's answer could not be read"


def transcript_sentences(transcript: str) -> list[str]:
    """The transcript's sentences, without speaker labels, blank lines or ``#`` comments."""
    sentences: list[str] = []
    for line in transcript.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        text = _SPEAKER.sub("", line, count=1).strip()
        sentences.extend(_split_sentences(text))
    return sentences


def _split_sentences(text: str) -> list[str]:
    pieces: list[str] = []
    for piece in _SENTENCE_END.split(text):
        if pieces and pieces[-1].endswith(_ABBREVIATIONS):
            pieces[-1] = f"{pieces[-1]} {piece}"  # "Ms. Sample" is one sentence
        else:
            pieces.append(piece)
    return [piece.strip() for piece in pieces if piece.strip()]


def normalize(text: str) -> str:
    """Lower case, words only: quotes match whatever punctuation or spacing the model used."""
    return _NOT_WORD.sub(" ", text.casefold()).strip()


def evidence_problem(evidence: str, transcript: str) -> str | None:
    """Why ``evidence`` does not count as a quote of ``transcript`` (None: it does)."""
    quote = normalize(evidence)
    if not quote:
        return NO_EVIDENCE
    if len(quote.split()) < MIN_EVIDENCE_WORDS:
        return EVIDENCE_TOO_SHORT
    if f" {quote} " not in f" {normalize(transcript)} ":
        return EVIDENCE_NOT_FOUND
    if evidence.rstrip(" \"'").endswith("?"):  # "Any fever?" -- the answer is the evidence
        return EVIDENCE_IS_QUESTION
    return None


@dataclass(frozen=True, slots=True)
class CheckedCode:
    """One suggestion after the checks; ``problems`` empty means it passed."""

    code: str
    system: str
    description: str
    evidence: str
    rationale: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """Every suggestion checked, plus problems of the code set as a whole."""

    codes: tuple[CheckedCode, ...]
    problems: tuple[str, ...] = ()

    @property
    def flagged(self) -> tuple[CheckedCode, ...]:
        return tuple(code for code in self.codes if code.problems)

    def to_json(self) -> dict[str, Any]:
        """Plain data for the graph state (``CheckedCode`` fields, problems as lists)."""
        return {
            "codes": [{**asdict(c), "problems": list(c.problems)} for c in self.codes],
            "problems": list(self.problems),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CodeCheck:
        codes = tuple(
            CheckedCode(**{**item, "problems": tuple(item.get("problems", ()))})
            for item in data.get("codes", ())
        )
        return cls(codes, tuple(data.get("problems", ())))

    def describe(self) -> str:
        """The check as text for the reviewer's prompt."""
        lines = [
            f"- {c.code} ({c.system}: {c.description})\n"
            f"  evidence: {c.evidence or '(none)'}\n  rationale: {c.rationale or '(none)'}\n"
            f"  automatic check: {'; '.join(c.problems) or 'passed'}"
            for c in self.codes
        ]
        if self.problems:
            lines.append("Problems of the code set: " + "; ".join(self.problems))
        return "\n".join(lines) or "(no codes suggested)"


def check_suggestions(
    suggestions: Iterable[Mapping[str, Any]] | None, table: CodeTable, transcript: str
) -> CodeCheck:
    """Check the coder's suggestions (``{"code", "evidence", "rationale"}`` dicts).

    ``None`` means the coder's answer was unreadable. Each suggestion is
    flagged when its code is not in ``table``, when it was already suggested,
    or when its evidence is not a quote of ``transcript``.
    """
    if suggestions is None:
        return CodeCheck((), (UNREADABLE,))
    items = [s for s in suggestions if isinstance(s, Mapping)]
    reported: set[str] = set()
    checked: list[CheckedCode] = []
    for item in items:
        code = str(item.get("code", "")).strip()
        evidence = str(item.get("evidence") or "").strip()
        entry = table.get(code)
        problems = [] if entry else [NOT_IN_TABLE]
        problem = evidence_problem(evidence, transcript)
        if problem:
            problems.append(problem)
        if code in reported:
            problems.append(DUPLICATE)
        reported.add(code)
        checked.append(
            CheckedCode(
                code=code,
                system=entry.system if entry else "unknown",
                description=entry.description if entry else "",
                evidence=evidence,
                rationale=str(item.get("rationale") or "").strip(),
                problems=tuple(problems),
            )
        )
    overall = () if any(c.system == ICD10CM for c in checked) else (NO_DIAGNOSIS,)
    return CodeCheck(tuple(checked), overall)
