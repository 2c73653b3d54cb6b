"""multitask-conformance: property-based conformance checks for multi-task batched envs, lazy
stacks and partial-tolerant policies built on torch, tensordict and torchrl.

The public surface is small: :class:`Subject` (what an implementation provides), :func:`resolve`
(a name to a subject) and the catalogue (``conformance.catalogue``).  Importing this package
imports neither torch nor any subject.
"""

from conformance.subject import Subject, SubjectError, available, resolve

__all__ = ["Subject", "SubjectError", "available", "resolve"]
__version__ = "0.1.0"
