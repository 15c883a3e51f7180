"""Warnings of our libraries that say nothing to a user of the studio, silenced by their exact text
(never a whole category): what is left in a job's log and the CLI's output is worth reading."""
from __future__ import annotations

import warnings

# (category, regex of the message's start). PEFT asks every model for `is_gradient_checkpointing`,
# which transformers 5 deprecates with a FutureWarning on each load; nothing for the user to change.
KNOWN = [(FutureWarning, r"`is_gradient_checkpointing` is deprecated")]


def silence_known_warnings() -> None:
    for category, message in KNOWN:
        warnings.filterwarnings("ignore", message=message, category=category)
