"""The answer of a run: the SOAP note, each code with its evidence and decision, the review.

A code is *ready* only when it passed the automatic check and the reviewer
accepted it; anything else -- a failed check, a flag, no verdict -- goes to a
person. Built from whatever stages finished, so a run stopped by its budget
still shows the note it paid for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from spendgraph.graph import exhausted

from .evidence import CheckedCode, CodeCheck
from .schemas import SoapNote

SCRIBE, CODER, CHECK, REVIEWER = "scribe", "coder", "evidence_check", "reviewer"
NOT_REVIEWED = "the reviewer gave no verdict"


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one suggested code: ready to bill, or to a person with reasons."""

    code: CheckedCode
    reasons: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.reasons


def latest_output(state: Mapping[str, Any], agent: str) -> Mapping[str, Any] | None:
    """The last ``outputs`` entry of ``agent`` in this query, if any."""
    found = [item for item in state.get("outputs") or () if item.get("agent") == agent]
    return found[-1] if found else None


def parsed_of(state: Mapping[str, Any], agent: str) -> Any:
    """The structured answer of ``agent`` (None when it did not run or was unreadable)."""
    output = latest_output(state, agent)
    return output.get("parsed") if output else None


def note_of(state: Mapping[str, Any]) -> SoapNote | None:
    parsed = parsed_of(state, SCRIBE)
    try:
        return SoapNote.model_validate(parsed) if parsed else None
    except ValidationError:
        return None


def check_of(state: Mapping[str, Any]) -> CodeCheck | None:
    parsed = parsed_of(state, CHECK)
    return CodeCheck.from_json(parsed) if parsed else None


def decide(check: CodeCheck, review: Mapping[str, Any] | None) -> list[Decision]:
    """Merge the automatic check with the reviewer's verdicts (they cannot clear a failed check)."""
    verdicts = {
        item.get("code"): item for item in (review or {}).get("reviews") or () if item.get("code")
    }
    decisions = []
    for code in check.codes:
        reasons = list(code.problems)
        verdict = verdicts.get(code.code)
        if review is None:
            reasons.append("the reviewer did not run")
        elif verdict is None:
            reasons.append(NOT_REVIEWED)
        elif verdict.get("verdict") != "accept":
            reasons.append(f"reviewer: {verdict.get('reason') or 'flagged'}")
        decisions.append(Decision(code, tuple(reasons)))
    return decisions


def render_report(state: Mapping[str, Any]) -> str:
    """The run's answer as Markdown, from the stages that finished."""
    sections = [_note_section(note_of(state), latest_output(state, SCRIBE) is not None)]
    check = check_of(state)
    review = parsed_of(state, REVIEWER)
    if check is not None:
        sections.append(_codes_section(check, decide(check, review)))
    if isinstance(review, Mapping):
        sections.append(_review_section(review))
    if exhausted(state):
        sections.append(
            "_Stopped early: the query's budget ran out. Everything above was paid for; "
            "raise `--budget-usd` to finish the pipeline._"
        )
    return "\n\n".join(section for section in sections if section)


def _note_section(note: SoapNote | None, scribe_ran: bool) -> str:
    if note is None:
        why = "did not match the SOAP schema" if scribe_ran else "was not written"
        return f"## SOAP note\n\n_The note {why}._"
    return "\n".join(
        [
            "## SOAP note",
            "",
            f"**Chief complaint:** {note.chief_complaint}",
            "",
            f"**Subjective:** {note.subjective}",
            "",
            f"**Objective:** {note.objective}",
            "",
            "**Assessment:**",
            *_bullets(note.assessment),
            "",
            "**Plan:**",
            *_bullets(note.plan),
        ]
    )


def _codes_section(check: CodeCheck, decisions: Sequence[Decision]) -> str:
    ready = sum(1 for d in decisions if d.ready)
    lines = [
        "## Suggested codes",
        "",
        f"{ready} of {len(decisions)} ready to bill; {len(decisions) - ready} for a person "
        "to review.",
        "",
    ]
    for decision in decisions:
        code = decision.code
        mark = "ready" if decision.ready else "REVIEW"
        lines.append(f"- [{mark}] **{code.code}** ({code.system}) {code.description}".rstrip())
        lines.append(f'  - evidence: "{code.evidence}"' if code.evidence else "  - evidence: none")
        lines.extend(f"  - {reason}" for reason in decision.reasons)
    lines.extend(f"- [REVIEW] {problem}" for problem in check.problems)
    return "\n".join(lines)


def _review_section(review: Mapping[str, Any]) -> str:
    lines = ["## Review", ""]
    if review.get("summary"):
        lines.append(str(review["summary"]))
    gaps = [str(gap) for gap in review.get("documentation_gaps") or () if gap]
    if gaps:
        lines += ["", "**Documentation gaps:**", *_bullets(gaps)]
    return "\n".join(lines) if len(lines) > 2 else ""


def _bullets(items: Sequence[str]) -> list[str]:
    return [f"- {item}" for item in items] or ["- (none)"]
