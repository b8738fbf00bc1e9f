#!/usr/bin/env bash
# Regenerates kernels/ptx/*.ptx from kernels/*.cu with NVRTC, and assembles every PTX file
# with ptxas for sm_70, sm_80 and sm_90. No CUDA toolkit and no GPU needed: NVRTC and ptxas
# come from NVIDIA's PyPI wheels, pinned to CUDA 12.4 (PTX ISA 8.4, loadable by drivers of
# CUDA 12.4 and newer, R550+; the CUDA 13 wheels' PTX needs newer drivers).
#
#   scripts/build-ptx.sh           regenerate kernels/ptx/ and assemble it
#   scripts/build-ptx.sh --check   regenerate into a temporary folder, fail on any difference
#                                  from the checked-in PTX, and assemble (what CI runs)
#
# The wheels go into a virtual environment at $EQFLOW_PTX_VENV (default /tmp/eqflow-ptx-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
NVRTC_VERSION=12.4.127
NVCC_VERSION=12.4.131
ARCH=compute_70
SM_LIST="sm_70 sm_80 sm_90"
venv=${EQFLOW_PTX_VENV:-/tmp/eqflow-ptx-venv}
mode=${1:-}

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  "nvidia-cuda-nvrtc-cu12==$NVRTC_VERSION" "nvidia-cuda-nvcc-cu12==$NVCC_VERSION"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
libnvrtc="$site/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"
ptxas="$site/nvidia/cuda_nvcc/bin/ptxas"

out=kernels/ptx
if [ "$mode" = "--check" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
elif [ -n "$mode" ]; then
  echo "usage: $0 [--check]" >&2
  exit 2
fi
mkdir -p "$out"
# one process per file: NVRTC numbers call sequences per process, so a file's PTX would
# otherwise depend on the files compiled before it
for cu in kernels/*.cu; do
  "$venv/bin/python" scripts/nvrtc_ptx.py "$libnvrtc" "$ARCH" "$out" "$cu"
done

if [ "$mode" = "--check" ]; then
  if ! diff -ru kernels/ptx "$out"; then
    echo "kernels/ptx/ is stale: run scripts/build-ptx.sh and commit the result" >&2
    exit 1
  fi
  echo "kernels/ptx/ is up to date"
fi

"$ptxas" --version | tail -1
for ptx in "$out"/*.ptx; do
  for sm in $SM_LIST; do
    "$ptxas" -arch="$sm" -o /dev/null "$ptx"
  done
  echo "  ptxas ok: $(basename "$ptx") ($SM_LIST)"
done
