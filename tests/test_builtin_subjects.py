"""The main job on the built-in subjects: the reference passes every property; torchrl passes or
hits only the findings it inherits, each with a reason and a reproducer that still fails."""

from __future__ import annotations

import pytest

from conformance import catalogue, findings
from conformance.subject import resolve


@pytest.mark.slow  # (CI checks torchrl at quick: .ci/run; tox -e check and tox -e slow both at ci)
@pytest.mark.parametrize("name", ["reference", "torchrl"])
def test_builtin_subject_conforms(run_cli, name):
    """`check --subject NAME --profile ci` exits 0: everything passed, skipped with a reason
    (SCN without dm_control) or, for torchrl, is a declared deviation."""
    run = run_cli("check", "--subject", name, "--profile", "ci", "--skip-doctor", report=True,
                  timeout=1200)
    props = run.report["subjects"][name]["properties"] if run.report else {}
    bad = {pid: c["message"][-800:] for pid, c in props.items()
           if c["outcome"] in ("failed", "xpassed")}
    assert not bad, bad
    assert run.code == 0, run.out[-4000:]
    assert sorted(props) == sorted(p.id for p in catalogue.PROPERTIES)
    outcomes = {c["outcome"] for c in props.values()}
    if name == "reference":
        # The reference's own parts (envs, policy) pass everything; its only deviations are the
        # tensordict lazy-stack findings it inherits by reusing tensordict's stack.
        assert outcomes <= {"passed", "skipped", "deviation"}, outcomes
        deviating = [pid for pid, c in props.items() if c["outcome"] == "deviation"]
        assert all(pid.startswith(("STK", "EXC")) for pid in deviating), deviating
        skipped = [pid for pid, c in props.items() if c["outcome"] == "skipped"]
        assert all(pid.startswith("SCN") for pid in skipped), skipped


@pytest.mark.slow  # (.ci/run proves them: check --prove all, then findings --verify)
@pytest.mark.parametrize("name", ["torchrl", "torchrl[use_buffers=False]"])
def test_torchrl_findings_hold_with_their_reproducers(name):
    """Every shipped finding the torchrl subject inherits (in its default configuration, and
    without ParallelEnv's buffers) names its reason and has a standalone reproducer that fails,
    with the finding's signature, on the installed releases."""
    subj = resolve(name)
    for path in findings.shipped():
        for f in findings.load(path):
            if not (f.concerns(subj.name, subj.uses, subj.options) and f.applies()) \
                    or f.ids[0].startswith("SCN"):
                continue
            assert len(f.reason) > 20, f
            verdict = findings.verify(f)
            assert verdict.status == "holds", (f.name, verdict)


def test_torchrl_reproducer_snippet_builds_its_env_with_and_without_a_deadline():
    """The torchrl subject's reproducer lines for parallel_env build a working env as every
    reproducer calls them (no deadline) and as the hang properties' do (a deadline)."""
    from reference.tasks import KeySpec, TaskSpec

    subj = resolve("torchrl")
    namespace: dict = {}
    exec(subj.snippet["parallel_env"], namespace)  # (the kit's own lines, as a reproducer runs)
    makers = [TaskSpec("t0", (KeySpec("obs", ()),)).maker()]
    for kwargs in ({}, {subj.deadline_keyword: 5.0}):
        env = namespace["parallel_env"](makers, **kwargs)
        try:
            assert env.reset().batch_size == (1,)
            if kwargs:
                assert env.BATCHED_PIPE_TIMEOUT == 5.0
        finally:
            env.close()
