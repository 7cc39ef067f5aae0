# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# A pinned CPU build of torch, installed before the package: a plain `torch` or a range
# would pull a multi-GB CUDA build on a CPU machine. Override on a GPU machine, e.g.
# `make demo TORCH=torch`.
TORCH  ?= torch==2.13.0
RUN    ?= runs/demo

.PHONY: install demo lint test test-fast bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/spotreview finetune --out $(RUN) --overwrite --record-train 500
	$(BIN)/spotreview analyze $(RUN)
	@echo "The demo approves its own run without a review (approve --yes); to review it yourself:"
	@echo "    $(BIN)/spotreview review $(RUN)              # the evaluation images"
	@echo "    $(BIN)/spotreview review $(RUN) --set train  # 500 recorded training images"
	$(BIN)/spotreview approve $(RUN) --by "make demo" --yes
	$(BIN)/spotreview export $(RUN)

# The style check runs before the tests: ruff is pinned by the `test` extra.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info
