"""Example app: clinical_scribe -- visit transcript to SOAP note, billing codes and a review.

scribe (SOAP note) -> coder (ICD-10-CM/CPT from codes.csv, each with its
evidence sentence) -> evidence check (plain code) -> reviewer. Patient text
stays out of the ledger: the app's runs do not store text. See README.md.
"""

from decimal import Decimal

from spendgraph.graph import App, RunOptions

from .graph import NAME, build
from .samples import transcripts

APP = App(
    name=NAME,
    description=(
        "Healthcare documentation: a visit transcript becomes a SOAP note, ICD-10-CM/CPT "
        "suggestions from a local code table with evidence, and a compliance review."
    ),
    build=build,
    # store_text=False: prompts and completions (the patient's words) never reach the
    # ledger, whatever the config's [ledger] store_text says.
    defaults=RunOptions(budget_usd=Decimal("0.01"), store_text=False),
    samples=tuple(transcripts().values()),
    tiers=("default", "large"),
    # No conversation checkpoints: a visit is one input, and the transcript must
    # not land in the threads database either.
    keep_threads=False,
)

__all__ = ["APP", "build"]
