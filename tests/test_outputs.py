"""Output names and plans, directly: the names `trtsr run` and `trtsr batch` write, the collision rule, what
`-o` means, and which inputs are this tool's own outputs."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from trtsr.errors import TrtsrError
from trtsr.outputs import (
    check_naming,
    collision_problems,
    find_collisions,
    output_name,
    output_target,
    own_outputs,
    plan_run,
)


@pytest.mark.parametrize(("name", "suffix", "fmt", "out"), [
    ("photo.jpg", "_x4", None, "photo_x4.jpg"),
    ("scan.TIF", "_x2", None, "scan_x2.tif"),  # the user's spelling, lower case
    ("anim.gif", "_x4", None, "anim_x4.png"),  # a format trtsr reads but does not write
    ("photo.jpg", "", "png", "photo.png"),
    ("clip.mkv", "_x4", "png", "clip_x4.mkv"),  # a video keeps its container
])
def test_output_names(name, suffix, fmt, out):
    assert output_name(name, suffix, fmt) == out


def test_naming_options_are_checked_and_normalised():
    assert check_naming("JPEG", "_big") == "jpg" and check_naming(None, None) is None
    with pytest.raises(TrtsrError, match="--format: unknown format 'bmp'"):
        check_naming("bmp", None)
    with pytest.raises(TrtsrError, match="holds a path separator"):
        check_naming(None, "../up")


def test_two_sources_with_one_output_are_both_named():
    clashes = find_collisions([("a/img.jpg", "out/img_x4.jpg"), ("b/img.jpg", "out/img_x4.jpg"),
                               ("c.jpg", "out/c_x4.jpg")])
    assert clashes == {"out/img_x4.jpg": ["a/img.jpg", "b/img.jpg"]}
    problems = collision_problems(clashes)
    assert [source for source, _ in problems] == ["a/img.jpg", "b/img.jpg"]
    assert "would also be written from b/img.jpg" in problems[0][1]


@pytest.mark.parametrize(("text", "inputs", "expected"), [
    (None, 1, (None, False)),
    ("big/", 3, (Path("big/"), False)),
    ("out", 3, (Path("out"), False)),  # no extension: a folder
    ("z.v2", 3, (Path("z.v2"), False)),
    ("one.png", 1, (Path("one.png"), True)),
    ("clip.mp4", 1, (Path("clip.mp4"), True)),
])
def test_what_o_means(text, inputs, expected):
    assert output_target(text, inputs) == expected


@pytest.mark.parametrize(("text", "inputs", "why"), [
    ("one.png", 2, "with 2 inputs, --output must be a folder"),
    ("x.bmp", 1, "trtsr writes png, jpg, webp or tiff, not .bmp"),
    ("x.avi", 1, "not .avi"),
])
def test_an_o_trtsr_cannot_write_is_one_line(text, inputs, why):
    with pytest.raises(TrtsrError, match=why):
        output_target(text, inputs)


def test_own_outputs_are_left_out_unless_named():
    root = PurePosixPath("/p")
    sources = [root / "a.jpg", root / "a_x4.jpg", root / "b_up.png", root / "b.png", root / "out/c.jpg",
               root / "a_x2.png"]
    named = [False, False, False, False, False, True]
    left = own_outputs(sources, named, root / "out", {root}, "_up")
    # a_x4 and b_up are outputs beside their inputs; out/c is below the output folder; a_x2 was named directly
    assert left == [False, True, True, False, True, False]
    # an output folder that is also an input folder holds sources
    assert own_outputs([root / "out/c.jpg"], [False], root / "out", {root / "out"}, "_x4") == [False]


def test_plan_run_pairs_inputs_with_outputs_and_refuses_clashes(tmp_path):
    for folder in ("A", "B"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "img.jpg").write_bytes(b"x")
    (tmp_path / "solo.png").write_bytes(b"x")
    plan = plan_run([str(tmp_path / "A"), str(tmp_path / "B"), str(tmp_path / "solo.png")], str(tmp_path / "out/"),
                    suffix="_x4", fmt=None)
    assert plan.jobs == [(tmp_path / "solo.png", tmp_path / "out" / "solo_x4.png")]
    assert len(plan.problems) == 2 and all("would also be written from" in p for p in plan.problems)
