"""``python -m conformance {check,list,matrix,doctor}``."""

from conformance.cli import main

raise SystemExit(main())
