"""The field notes a technician installing a gateway reads: the index names every note, the notes name only
notes that exist, and every numbered citation has its source listed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTES = Path(__file__).resolve().parent.parent / "firmware_notes"
INDEX = NOTES / "README.md"
_SOURCES = re.compile(r"^#{2,3} Sources\s*$", re.MULTILINE)


def _notes() -> list[Path]:
    return sorted(p for p in NOTES.glob("*.md") if p != INDEX)


def test_the_index_lists_every_note_and_only_notes_that_exist() -> None:
    linked = set(re.findall(r"\]\(([^)]+\.md)\)", INDEX.read_text()))
    assert linked == {p.name for p in _notes()}


@pytest.mark.parametrize("note", _notes(), ids=lambda p: p.name)
def test_a_note_names_only_notes_that_exist(note: Path) -> None:
    named = set(re.findall(r"`([a-z0-9-]+\.md)`", note.read_text()))
    assert named <= {p.name for p in _notes()}, f"{note.name} names a note that does not exist"


@pytest.mark.parametrize("note", [p for p in _notes() if _SOURCES.search(p.read_text())], ids=lambda p: p.name)
def test_every_citation_has_its_source(note: Path) -> None:
    text = note.read_text()
    # A note may cite per section: each "Sources" list serves the text since the previous one.
    parts = _SOURCES.split(text)
    for body, sources in zip(parts[:-1], parts[1:], strict=True):
        listed = {int(n) for n in re.findall(r"^(\d+)\. ", sources.split("\n#", 1)[0], re.MULTILINE)}
        cited = {int(n) for n in re.findall(r"\[(\d+)\]", body)}
        assert listed, f"{note.name}: an empty Sources list"
        assert cited <= listed, f"{note.name}: cited without a source: {sorted(cited - listed)}"
