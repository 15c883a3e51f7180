"""The keys task: a photo of a key -> keyway, bitting and brand (the Keylike seed).

Everything the studio knows about keys lives in this package: the task (task.py), the keyway catalog
(catalog.py, reading assets/keyways.json), the synthetic key renderer (render.py), the phone app's
JSON and REST route (app_json.py) and the Keylike JSONL format (formats.py).
"""
from core.tasks.keys.task import TASK, KeysTask

__all__ = ["TASK", "KeysTask"]
