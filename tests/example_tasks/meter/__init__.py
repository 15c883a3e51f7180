"""meter: a photo of a utility meter -> its kind, its reading and the unit (docs/NEW_TASK.md's example).

Everything the studio knows about meters lives in this package: the task (task.py), the CSV label
format (formats.py), the REST route (route.py) and the synthetic meter pictures (render.py).
"""
from .task import TASK, MeterTask

__all__ = ["TASK", "MeterTask"]
