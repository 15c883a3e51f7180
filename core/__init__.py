"""Trinity Studio engine: tasks, datasets, models, training, inference, export. Never imports gradio."""

import logging as _logging

# On CPUs with avx512_bf16, bitsandbytes logs "Failed to load CPU gemm_4bit_forward from
# kernels-community" at import when the optional `kernels` package is absent; it then uses its own
# CPU kernel, so nothing failed. Silenced here, where every entry point (studio, CLI, job) starts.
_logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    lambda record: "kernels-community" not in record.getMessage())
