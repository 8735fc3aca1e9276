#!/usr/bin/env bash
# Download, on a machine with pip access, the wheels a bare GPU box lacks for benchmarks/device.sh,
# into .whl/ (git-ignored). The box is assumed to have torch, torchvision, transformers, accelerate,
# huggingface-hub, safetensors, numpy, scipy, scikit-image, scikit-learn, pandas, pyarrow, pillow,
# matplotlib, pyyaml, click, tqdm (a CUDA PyTorch image); adjust the list for yours.
# Usage: bash benchmarks/fetch_wheels.sh [PYTHON_VERSION_OF_THE_BOX]   (default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=${1:-3.12}
python3 -m pip download --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl diffusers==0.42.1 lpips==0.1.4 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
    typing-inspection==0.4.5 importlib-metadata==10.2.0 typing-extensions==4.16.0
ls -la .whl
