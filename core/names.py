"""One rule for the names users give datasets and runs. Each name becomes a single folder name and
appears in URLs and on the command line, so it is plain ASCII, starts with a letter or digit (never
'.', '..' or a hidden file), holds no path separator, and stays short enough for any file system."""
from __future__ import annotations

import re

MAX_LEN = 100
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_LEN - 1}}}")


def is_valid_name(value: object) -> bool:
    """True for a usable dataset or run folder name: letters, digits, '-', '_' and '.', starting
    with a letter or digit, at most MAX_LEN characters."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None
