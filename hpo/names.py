"""The names a user types, each checked against one pattern: study names and worker ids.

A study name is a command-line argument and part of file names (logs, journal locks); a worker
id is recorded on every trial. Kept free of heavy imports: the command line checks them first.
"""

from __future__ import annotations

import re

STUDY_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
"""Letters, digits, ``_.-`` (not a leading ``-`` or ``.``: ``..`` would be a folder above
``runs/report/``), at most 64 characters. A group's studies are ``NAME.<arm>.s<r>``."""
STUDY_FILE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"
"""A study file's ``name``: as a study name, without dots, which name its group's studies
(``NAME.<arm>``, ``NAME.validation``): a file named ``smoke.quantum`` would read as an arm."""
STUDY_NAME = re.compile(STUDY_NAME_PATTERN)
WORKER_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
