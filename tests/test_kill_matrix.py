"""A check that cannot fail is not a check: every property is killed by a mutant, and the
built-in subjects pass everything (or, for torchrl, fail only their declared deviations)."""

from __future__ import annotations

import json

import pytest

from conformance import catalogue
from tests import kill_matrix

# Both tests read one run of the kill matrix (a minute and a half of CPU): under xdist they go to
# the same worker (pyproject's --dist loadgroup), so the run is not made twice.
pytestmark = pytest.mark.xdist_group("kill_matrix")


@pytest.fixture(scope="module")
def kills() -> dict[str, list[str]]:
    return kill_matrix.discover()


@pytest.fixture(scope="module")
def kill_report(kills, tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("kills") / "kills.json"
    procs = kill_matrix.run(kills, path)
    assert path.exists(), "\n".join(p.stdout[-3000:] for p in procs)
    return json.loads(path.read_text())


def test_every_property_has_a_mutant(kills):
    """Each catalogue property is listed as killed by at least one mutant."""
    listed = {pid for ids in kills.values() for pid in ids}
    missing = [p.id for p in catalogue.PROPERTIES if p.id not in listed]
    assert not missing, f"properties no mutant targets: {missing}"
    unknown = sorted(listed - set(catalogue.BY_ID))
    assert not unknown, f"KILLS name unknown IDs: {unknown}"


def test_every_mutant_fails_its_properties(kills, kill_report):
    """Each mutant fails every property its KILLS entry lists (the kill matrix holds)."""
    print("\n" + kill_matrix.markdown(kills, kill_report))
    survivors = []
    for target, wanted in kills.items():
        name = kill_matrix.subject_name(target)
        props = kill_report["subjects"].get(name, {}).get("properties", {})
        for pid in wanted:
            outcome = props.get(pid, {}).get("outcome", "not run")
            if outcome != "failed":
                survivors.append(f"{target} on {pid}: {outcome} "
                                 f"({props.get(pid, {}).get('message', '')[:200]})")
    assert not survivors, "mutants that survived:\n" + "\n".join(survivors)


def test_docs_kill_matrix_is_current(kills, kill_report):
    """docs/kill-matrix.md is the page of the kill matrix this run produced."""
    from tests import readme

    assert readme.KILL_MATRIX_PAGE.read_text() == readme.kill_matrix_page(
        kill_matrix.compact(kills, kill_report)), (
        "docs/kill-matrix.md is stale: regenerate it with `python -m tests.readme --kill-matrix`")
