"""ImportImage refuses a disk file too large for the cloud before it joins its parts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from karri.cloud.images.imports import FORMAT_SLACK, ImportFailed, Imports, Source

LIMIT = 1024 * 1024 * 1024


class FakeWalrus:
    def __init__(self, size: int) -> None:
        self.size = size
        self.joined: list[tuple[str, str]] = []

    def head_object(self, bucket: str, key: str) -> SimpleNamespace:
        return SimpleNamespace(size=self.size)

    def object_path(self, bucket: str, key: str) -> Path:
        self.joined.append((bucket, key))
        raise RuntimeError("stop here: the size was accepted")


def imports(walrus: FakeWalrus, tmp_path: Path) -> Imports:
    return Imports(None, walrus, None, None, None, tmp_path, LIMIT)  # type: ignore[arg-type]


def test_an_oversized_disk_file_is_refused_before_its_parts_are_joined(tmp_path: Path) -> None:
    walrus = FakeWalrus(4 * LIMIT)
    with pytest.raises(ImportFailed, match="this cloud imports disks of at most"):
        imports(walrus, tmp_path)._convert(
            "import-ami-1", Source("b", "k", "qcow2"), tmp_path / "o"
        )
    assert walrus.joined == []


def test_a_disk_file_with_its_format_overhead_goes_on_to_be_joined(tmp_path: Path) -> None:
    walrus = FakeWalrus(LIMIT + FORMAT_SLACK)
    with pytest.raises(RuntimeError, match="stop here"):
        imports(walrus, tmp_path)._convert(
            "import-ami-1", Source("b", "k", "qcow2"), tmp_path / "o"
        )
    assert walrus.joined == [("b", "k")]
