"""Example tasks that live in the tests, never shipped as product tasks: docs/NEW_TASK.md's meter task.
tests/task_install.py installs one under core/tasks/ for the length of a test, and removes it again."""
