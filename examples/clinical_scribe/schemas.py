"""What each agent must answer: JSON schemas sent as ``response_format``.

A server with structured outputs (vLLM, SGLang, TensorRT-LLM, llama.cpp's
grammar support, the simulator) decodes under these schemas, so the coder can
only name codes of the table and -- for transcripts of a sensible length --
only quote sentences that are really in the transcript. The coder's schema is
therefore built per visit. Answers are still checked in code
(:mod:`.evidence`): not every server enforces a schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from spendgraph.agents import OutputSchema

from .codes import CodeTable

# Above this many sentences (or characters) the evidence is free text instead
# of an enum: hosted structured-output APIs cap enum sizes (OpenAI: 500 values
# and 15,000 characters in total per schema).
MAX_QUOTABLE_SENTENCES = 200
MAX_QUOTABLE_CHARS = 12_000
MAX_SUGGESTIONS = 12
_CLOSED = ConfigDict(extra="forbid")  # "additionalProperties": false, as strict mode wants


class SoapNote(BaseModel):
    """The scribe's note of one visit, in SOAP order."""

    model_config = _CLOSED

    chief_complaint: str = Field(description="why the patient came, one short line")
    subjective: str = Field(
        description="history as the patient tells it: symptoms, onset, duration, "
        "what they tried, relevant history and medications"
    )
    objective: str = Field(description="vital signs, examination findings and test results")
    assessment: list[str] = Field(
        min_length=1, max_length=6, description="diagnoses or problems, most important first"
    )
    plan: list[str] = Field(
        min_length=1,
        max_length=10,
        description="tests, procedures done, prescriptions, advice and follow-up",
    )

    def to_text(self) -> str:
        """The note as plain text for the next agent's prompt."""
        return "\n".join(
            [
                f"Chief complaint: {self.chief_complaint}",
                f"Subjective: {self.subjective}",
                f"Objective: {self.objective}",
                "Assessment:",
                *(f"- {item}" for item in self.assessment),
                "Plan:",
                *(f"- {item}" for item in self.plan),
            ]
        )


def coding_schema(table: CodeTable, sentences: Sequence[str]) -> OutputSchema:
    """The coder's output schema for one visit: codes from ``table``, evidence from ``sentences``.

    The answer is parsed as plain JSON (no pydantic model): a suggestion the
    server did not constrain must reach :func:`.evidence.check_suggestions`
    and be flagged there, not fail the whole answer.
    """
    codes = Literal[table.ids()]  # type: ignore[valid-type]
    quotable = tuple(dict.fromkeys(s for s in sentences if s))
    fits = 0 < len(quotable) <= MAX_QUOTABLE_SENTENCES and sum(map(len, quotable)) <= (
        MAX_QUOTABLE_CHARS
    )
    evidence: Any = Literal[quotable] if fits else str  # type: ignore[valid-type]
    suggestion = create_model(
        "CodeSuggestion",
        __config__=_CLOSED,
        code=(codes, Field(description="a code from the code table")),
        evidence=(evidence, Field(description="the transcript sentence that supports the code")),
        rationale=(str, Field(description="why the code applies, one sentence")),
    )
    coding = create_model(
        "Coding",
        __config__=_CLOSED,
        suggestions=(list[suggestion], Field(min_length=1, max_length=MAX_SUGGESTIONS)),  # type: ignore[valid-type]
    )
    return OutputSchema(name="Coding", schema=coding.model_json_schema())


def suggestions_of(parsed: Any) -> list[Mapping[str, Any]] | None:
    """The suggestion dicts of a parsed coder answer; None when it has no readable list."""
    if not isinstance(parsed, Mapping) or not isinstance(parsed.get("suggestions"), list):
        return None
    return [item for item in parsed["suggestions"] if isinstance(item, Mapping)]


def review_schema(codes: Sequence[str]) -> type[BaseModel]:
    """The reviewer's output: a verdict on each code that was suggested for this visit."""
    unique = tuple(dict.fromkeys(codes))
    reviewed: Any = Literal[unique] if unique else str  # type: ignore[valid-type]
    code_review = create_model(
        "CodeReview",
        __config__=_CLOSED,
        code=(reviewed, Field(description="the suggested code this verdict is about")),
        verdict=(Literal["accept", "flag"], Field(description="flag anything doubtful")),
        reason=(str, Field(description="why, one sentence")),
    )
    return create_model(
        "Review",
        __config__=_CLOSED,
        reviews=(list[code_review], Field(max_length=max(len(unique), 1))),  # type: ignore[valid-type]
        documentation_gaps=(
            list[str],
            Field(max_length=5, description="what the note lacks to support billing"),
        ),
        summary=(str, Field(description="the review in one or two sentences")),
    )
