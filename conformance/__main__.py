"""``python -m conformance {check,list,doctor}``."""

from conformance.cli import main

raise SystemExit(main())
