"""The VM image's cache (tests/vm/image.py), on the host: no VM needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vm import image


def test_the_cache_key_follows_the_build_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "build_image.sh"
    script.write_bytes(image.BUILD_SCRIPT.read_bytes())
    monkeypatch.setattr(image, "BUILD_SCRIPT", script)
    before = image.cache_key()
    assert image.cache_key() == before
    script.write_text(script.read_text() + "\n# one more step\n")
    assert image.cache_key() != before


def test_an_incomplete_build_is_not_taken_for_an_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image, "CACHE_ROOT", tmp_path)
    directory = tmp_path / image.cache_key()
    directory.mkdir()
    for name in image.FILES[:-1]:
        (directory / name).write_text("x")
    assert image.cached() is None
    (directory / image.FILES[-1]).write_text("6.1.0-50-amd64\n")
    found = image.cached()
    assert found is not None and found.kernel_version == "6.1.0-50-amd64"


def test_the_cache_lives_outside_the_repository() -> None:
    assert not image.CACHE_ROOT.resolve().is_relative_to(image.PROJECT)
