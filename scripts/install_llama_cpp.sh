#!/usr/bin/env bash
# Installs llama.cpp for the GGUF export, from PyPI only: the pinned llama-cpp-python source
# distribution is downloaded once, built by pip (llama.cpp + libmtmd for images; ~5 min on 2 cores,
# needs a C++ compiler; cmake/ninja come from PyPI as build dependencies), and llama.cpp's own
# converter + gguf-py are unpacked from that same file into the workspace, so converter, quantizer
# and runner are one llama.cpp version.
#   bash scripts/install_llama_cpp.sh [WORKSPACE]      (default: $TRINITY_WORKSPACE or ./workspace)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="$(python3 -c 'from core.export_gguf import LLAMA_CPP_PYTHON; print(LLAMA_CPP_PYTHON)')"
WS="${1:-${TRINITY_WORKSPACE:-$PWD/workspace}}"
TOOLS="$WS/tools"
SDIST="$TOOLS/llama_cpp_python-$VERSION.tar.gz"
mkdir -p "$TOOLS"
if [ ! -f "$SDIST" ]; then
  python3 -m pip download -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$TOOLS"
fi
if ! python3 -c "import llama_cpp, llama_cpp.mtmd_cpp, sys; sys.exit(llama_cpp.__version__ != '$VERSION')" 2>/dev/null; then
  # Every core for the build (set CMAKE_ARGS yourself for GPU backends, e.g. -DGGML_CUDA=on). The default
  # is a portable AVX2 build: a -march=native one crashed ("Illegal instruction") on VMs reporting AMX.
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" python3 -m pip install -q "$SDIST"
fi
TRINITY_WORKSPACE="$WS" python3 -c 'from core.export_gguf import converter_dir; print("converter:", converter_dir())'
python3 -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__, "ready")'
