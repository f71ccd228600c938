"""The synthetic visit transcripts shipped with the example (``visit_*.txt``).

All of them are fictional, written for testing. Lines starting with ``#`` are
comments (the "synthetic" notice) and are not part of the transcript.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
PATTERN = "visit_*.txt"


def read_transcript(path: Path) -> str:
    """A transcript file's text without its ``#`` comment lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#")).strip()


def transcripts(folder: Path = HERE) -> dict[str, str]:
    """Every sample transcript by name (``sore_throat`` for ``visit_sore_throat.txt``)."""
    return {
        path.stem.removeprefix("visit_"): read_transcript(path)
        for path in sorted(folder.glob(PATTERN))
    }
