"""The installed release of a distribution, nightly builds included.

torchrl's and tensordict's nightlies install the same ``torchrl`` / ``tensordict`` packages under
other distribution names (``torchrl-nightly``, ``tensordict-nightly``) and dated versions
(``2026.10.27``): :func:`version` finds either, so a report names the nightly's date and a
finding's ``when = "tensordict<0.15"`` reads a nightly as newer than every release.
"""

from __future__ import annotations

from importlib import metadata

NIGHTLY_SUFFIX = "-nightly"


def version(dist: str) -> str:
    """The installed version of ``dist``, else of ``dist``-nightly.

    Raises:
        metadata.PackageNotFoundError: neither is installed.
    """
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        if dist.endswith(NIGHTLY_SUFFIX):
            raise
        return metadata.version(dist + NIGHTLY_SUFFIX)


def nightly(dist: str) -> bool:
    """Whether ``dist`` is installed as its nightly build (``dist``-nightly, not ``dist``)."""
    try:
        metadata.version(dist)
        return False
    except metadata.PackageNotFoundError:
        pass
    try:
        metadata.version(dist + NIGHTLY_SUFFIX)
        return True
    except metadata.PackageNotFoundError:
        return False
