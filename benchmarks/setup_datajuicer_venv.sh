#!/usr/bin/env bash
# A separate virtual environment with Data-Juicer, for benchmarks/clip_peer_datajuicer.py.
#
#   bash benchmarks/setup_datajuicer_venv.sh [VENV_DIR]     # default: ~/.cache/altsift/venv-datajuicer
#
# Data-Juicer gets its own venv because its dependency set (spacy, datasets, av, librosa, streamlit, ...)
# must not leak into altsift's. torch is pinned first (2.13.0, the CPU wheel altsift uses) so that nothing
# pulls a CUDA build; transformers is the version altsift pins, so both load the checkpoint with the same
# code. Measured here: py-data-juicer 1.6.1 installs on Python 3.11 with numpy 2.4 but imports only after
# `aiohttp` is added (data_juicer/utils/file_utils.py imports it; it is not among the package's
# dependencies). Its `generic` extra (torch 2.6, transformers < 4.55, vllm, cudf) is not installed.
set -euo pipefail

VENV="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/altsift/venv-datajuicer}"
PY="${PYTHON:-python3}"
DJ_VERSION="${DJ_VERSION:-1.6.1}"

mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.13.0                    # first: the CPU wheel, no CUDA download
"$VENV/bin/pip" install -q "py-data-juicer==$DJ_VERSION"
"$VENV/bin/pip" install -q transformers==5.23.0 safetensors==0.8.0 aiohttp
"$VENV/bin/python" - <<'EOF'
import data_juicer
import torch
import transformers
from data_juicer.ops.filter.image_text_similarity_filter import ImageTextSimilarityFilter  # noqa: F401

print(f"data-juicer {data_juicer.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
EOF
echo "Data-Juicer venv ready: $VENV (pass --dj-python $VENV/bin/python)"
