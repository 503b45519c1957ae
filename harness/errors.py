"""The two exceptions every layer may raise; the bottom of the import graph.

- `UsageError`: bad input from the user (a scenario file, a run id, a flag).
  cli.main catches it, once, and prints it as one line with exit status 2.
- `Skip`: this case cannot run here (a device or dtype the implementation
  lacks, a device this machine lacks, a case too large to fit). The sweep turns
  it into a `skipped` row whose reason is str(exc).

Nothing here imports anything from harness/.
"""


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class Skip(Exception):
    """This case cannot run here; str(exc) says why."""
