"""The ui2sql task: a UI screenshot -> the SQL schema behind it (the Ghost Architect seed).

Everything the studio knows about SQL schemas lives in this package: the task (task.py), finding SQL
in a model's answer (extract.py), parsing with sqlglot (parse.py), metrics and the schema diff
(score.py), the ER diagram as SVG (er_diagram.py), the REST route (route.py) and Ghost Architect's
dataset_vision.json format (formats.py).
"""
from core.tasks.ui2sql.parse import dialect_name
from core.tasks.ui2sql.task import (DEFAULT_PROMPT, DIALECTS, MAX_CHARS, TASK, Ui2SqlTask, parse,
                                    schema_diff, transpile, type_family)

__all__ = ["TASK", "Ui2SqlTask", "parse", "transpile", "schema_diff", "type_family", "dialect_name",
           "DIALECTS", "MAX_CHARS", "DEFAULT_PROMPT"]
