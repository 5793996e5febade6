"""JSON records beside the files they describe: one load and save path, one line for each broken file."""

from __future__ import annotations

import dataclasses
import json

import pytest

from trtsr.errors import TrtsrError
from trtsr.records import JsonRecord


@dataclasses.dataclass(frozen=True)
class Note(JsonRecord):
    name: str
    count: int
    extra: str | None = None

    what = "note"
    not_found_hint = " (write one first)"
    missing_hint = "; write it again"

    def check(self, path) -> None:
        if self.count < 0:
            raise TrtsrError(f"note has a negative count {self.count}", path=path)


def test_a_record_round_trips_and_ignores_keys_it_does_not_know(tmp_path):
    path = Note("a", 2).save(tmp_path / "n.json")
    assert Note.load(path) == Note("a", 2)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "from_a_newer_version": 1}))
    assert Note.load(path) == Note("a", 2)


@pytest.mark.parametrize(("content", "why"), [
    (None, "note not found (write one first)"),
    ("{not json", "note is not valid JSON"),
    ("[1, 2]", "note is not a JSON object"),
    ('{"name": "a"}', "note lacks count; write it again"),
    ('{"name": "a", "count": -1}', "note has a negative count -1"),
])
def test_each_broken_record_is_one_line_naming_the_file(tmp_path, content, why):
    path = tmp_path / "n.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TrtsrError) as caught:
        Note.load(path)
    assert why in str(caught.value) and caught.value.path == path and "\n" not in str(caught.value)


def test_saving_replaces_the_file_whole(tmp_path):
    path = tmp_path / "n.json"
    Note("a", 1).save(path)
    Note("b", 3).save(path)
    assert Note.load(path) == Note("b", 3) and [p.name for p in tmp_path.iterdir()] == ["n.json"]
