"""clinical_scribe's deterministic parts: the code table, the evidence check, schemas, decisions."""

from __future__ import annotations

import re

import pytest

from spendgraph.examples.clinical_scribe import evidence
from spendgraph.examples.clinical_scribe.codes import CPT, ICD10CM, CodeTable
from spendgraph.examples.clinical_scribe.evidence import (
    CodeCheck,
    check_suggestions,
    evidence_problem,
    transcript_sentences,
)
from spendgraph.examples.clinical_scribe.report import decide, render_report
from spendgraph.examples.clinical_scribe.samples import transcripts
from spendgraph.examples.clinical_scribe.schemas import (
    MAX_QUOTABLE_SENTENCES,
    coding_schema,
    review_schema,
)

TABLE = CodeTable.load()
VISIT = transcripts()["sore_throat"]
QUOTE = "We did a rapid strep test in the office, and it is positive."


def test_the_code_table_holds_real_looking_codes_of_both_systems():
    assert 40 <= len(TABLE.codes) <= 60
    for code in TABLE.ids(ICD10CM):
        assert re.fullmatch(r"[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?", code), code
    for code in TABLE.ids(CPT):
        assert re.fullmatch(r"[0-9]{5}", code), code
    assert TABLE.get("J02.0").description == "Streptococcal pharyngitis"
    assert TABLE.get("J02") is None  # exact codes only
    assert TABLE.render().splitlines()[0].startswith("J02.0 (ICD-10-CM)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("code,system,description\n", "first line must be"),
        ("system,code,description\nICD-10-CM,J02.0\n", ":2: expected three"),
        ("system,code,description\nICD-9,250.00,Diabetes\n", "system must be one of"),
        ("system,code,description\nCPT,99213,a\nCPT,99213,b\n", "99213 more than once"),
        ("system,code,description\n", "empty"),
    ],
)
def test_a_broken_code_table_names_the_file_and_problem(tmp_path, text, message):
    path = tmp_path / "codes.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        CodeTable.load(path)
    assert str(path) in str(caught.value)


def test_transcripts_split_into_sentences_without_speakers_or_comments():
    text = (
        "# synthetic\nClinician: Hi Ms. Sample. How are you?\n\n"
        "Patient: Sore throat! Since Saturday."
    )
    assert transcript_sentences(text) == [
        "Hi Ms. Sample.",
        "How are you?",
        "Sore throat!",
        "Since Saturday.",
    ]
    assert QUOTE in transcript_sentences(VISIT)


@pytest.mark.parametrize(
    ("quote", "problem"),
    [
        (QUOTE, None),
        ("we did a RAPID strep test in the office -- and it is positive", None),
        ("rapid strep test", None),  # part of a sentence is still a quote
        ("", evidence.NO_EVIDENCE),
        ("strep test", evidence.EVIDENCE_TOO_SHORT),
        ("The rapid flu test is positive.", evidence.EVIDENCE_NOT_FOUND),
        ("apid strep tes", evidence.EVIDENCE_NOT_FOUND),  # whole words only
        ("Any cough or runny nose?", evidence.EVIDENCE_IS_QUESTION),
        ("No cough at all, just the throat and feeling wiped out.", None),
    ],
)
def test_evidence_must_be_a_quote_of_the_transcript(quote, problem):
    assert evidence_problem(quote, VISIT) == problem


def test_the_check_flags_unknown_codes_missing_evidence_and_duplicates():
    check = check_suggestions(
        [
            {"code": "J02.0", "evidence": QUOTE, "rationale": "positive strep test"},
            {"code": "87880", "evidence": QUOTE},
            {"code": "J99.99", "evidence": QUOTE},
            {"code": "99213", "evidence": "The patient was seen for twenty minutes."},
            {"code": "J02.0", "evidence": QUOTE},
        ],
        TABLE,
        VISIT,
    )
    problems = [c.problems for c in check.codes]
    assert problems == [
        (),
        (),
        (evidence.NOT_IN_TABLE,),
        (evidence.EVIDENCE_NOT_FOUND,),
        (evidence.DUPLICATE,),
    ]
    assert check.codes[0].system == ICD10CM and check.codes[2].system == "unknown"
    assert check.problems == ()
    assert CodeCheck.from_json(check.to_json()) == check


def test_the_check_flags_a_code_set_without_a_diagnosis_and_an_unreadable_answer():
    only_cpt = check_suggestions([{"code": "87880", "evidence": QUOTE}], TABLE, VISIT)
    assert only_cpt.problems == (evidence.NO_DIAGNOSIS,)
    assert check_suggestions(None, TABLE, VISIT).problems == (evidence.UNREADABLE,)


def test_the_coder_schema_allows_only_table_codes_and_transcript_sentences():
    schema = coding_schema(TABLE, transcript_sentences(VISIT)).schema
    item = schema["$defs"]["CodeSuggestion"]["properties"]
    assert item["code"]["enum"] == list(TABLE.ids())
    assert item["evidence"]["enum"] == transcript_sentences(VISIT)
    assert schema["$defs"]["CodeSuggestion"]["additionalProperties"] is False
    long_visit = [f"Sentence number {i}." for i in range(MAX_QUOTABLE_SENTENCES + 1)]
    free = coding_schema(TABLE, long_visit).schema["$defs"]["CodeSuggestion"]["properties"]
    assert free["evidence"]["type"] == "string" and "enum" not in free["evidence"]


def test_the_reviewer_may_only_judge_codes_that_were_suggested():
    review = review_schema(["J02.0", "87880", "J02.0"]).model_json_schema()
    assert review["$defs"]["CodeReview"]["properties"]["code"]["enum"] == ["J02.0", "87880"]
    assert review["properties"]["reviews"]["maxItems"] == 2
    assert review_schema([]).model_validate(
        {"reviews": [], "documentation_gaps": [], "summary": ""}
    )


def test_only_checked_and_accepted_codes_are_ready():
    check = check_suggestions(
        [
            {"code": "J02.0", "evidence": QUOTE},
            {"code": "87880", "evidence": QUOTE},
            {"code": "99213", "evidence": "not in the visit at all"},
            {"code": "R50.9", "evidence": "Last night I had a fever of 101."},
        ],
        TABLE,
        VISIT,
    )
    review = {
        "reviews": [
            {"code": "J02.0", "verdict": "accept", "reason": "positive test"},
            {"code": "87880", "verdict": "flag", "reason": "done elsewhere?"},
            {"code": "99213", "verdict": "accept", "reason": "fine"},
        ]
    }
    decisions = decide(check, review)
    assert [d.ready for d in decisions] == [True, False, False, False]
    assert decisions[1].reasons == ("reviewer: done elsewhere?",)
    assert decisions[2].reasons == (evidence.EVIDENCE_NOT_FOUND,)  # accepting cannot clear it
    assert decisions[3].reasons == ("the reviewer gave no verdict",)
    assert all(not d.ready for d in decide(check, None))


def test_the_report_shows_what_finished():
    state = {
        "status": "budget_exhausted",
        "outputs": [{"agent": "scribe", "parsed": None, "content": "not json"}],
    }
    report = render_report(state)
    assert "did not match the SOAP schema" in report and "Stopped early" in report
    assert "## Suggested codes" not in report
