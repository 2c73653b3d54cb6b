"""``python -m conformance {check,list,matrix,doctor}``."""

import gc

from conformance.cli import main

code = main()
# Exempt what is left from the collection at interpreter exit: with tensordict imported (it
# pulls in torch._dynamo and sympy) that collection alone took about 1 s of CPU per run.
gc.freeze()
raise SystemExit(code)
