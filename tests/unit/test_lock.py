"""The lock files that `make` and CI install from agree with pyproject's ranges."""

import re
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]


def pins(name: str) -> dict[str, tuple[str, int]]:
    """package -> (version, number of hashes) in a lock file."""
    text = (ROOT / name).read_text()
    found = {}
    for match in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:\s+--hash=sha256:\w+.*\n)+)",
                             text, re.M):  # fmt: skip
        found[canonicalize_name(match[1])] = (match[2], match[3].count("--hash="))
    assert found, f"{name} holds no pins"
    return found


@pytest.mark.parametrize(
    ("lock", "extras"), [("requirements.lock", ()), ("requirements-dev.lock", ("dev",))]
)
def test_every_requirement_is_pinned_within_its_range_with_hashes(lock, extras):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = list(project["project"]["dependencies"])
    for extra in extras:
        wanted += project["project"]["optional-dependencies"][extra]
    wanted += project["build-system"]["requires"]  # --no-build-isolation builds with these
    locked = pins(lock)
    for line in wanted:
        requirement = Requirement(line)
        version, hashes = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (line, version)
        assert hashes >= 1


def test_the_dev_lock_pins_the_same_versions_as_the_runtime_lock():
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {k: v for k, (v, _) in runtime.items()} == {k: dev[k][0] for k in runtime}
