# sira — developer and user entry points.
#   make demo    install, then the whole flow on the bundled example: analyze, verify,
#                optimize, estimate, build the HLS project, C-simulate it with g++
#   make test    install, then run the test suite (fast tier)
#   make test-slow   the slow tier (zoo-wide sampling), run by CI
#   make bench   start-up time; speed benchmarks against qonnx: range analysis, then model loading;
#                accumulator widths; resource estimate SIRA vs the FINN baseline;
#                HLS build and C-simulation time per model; the conformance zoo through the flow;
#                FINN's own estimate with and without sira's steps (in .venv-finn; skipped without it)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sira-installed
EXAMPLE := examples/sira_mlp.onnx
EXAMPLE_SPEC := examples/sira_mlp.spec.json
CONV_EXAMPLE := examples/sira_conv.onnx
CONV_SPEC := examples/sira_conv.spec.json

.PHONY: install demo test test-slow test-all bench example clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,hls]"
	touch $(STAMP)

demo: install
	$(BIN)/sira analyze $(EXAMPLE) --input-spec $(EXAMPLE_SPEC)
	$(BIN)/sira verify $(EXAMPLE) --input-spec $(EXAMPLE_SPEC) --samples 200
	mkdir -p out
	$(BIN)/sira optimize $(EXAMPLE) --input-spec $(EXAMPLE_SPEC) -o out/sira_mlp_optimized.onnx --report out/sira_mlp_optimize.json
	$(BIN)/sira estimate out/sira_mlp_optimized.onnx
	$(BIN)/sira build $(EXAMPLE) --input-spec $(EXAMPLE_SPEC) -o out/sira_mlp_hls --samples 100 -q
	$(BIN)/sira csim out/sira_mlp_hls
	$(BIN)/sira build $(CONV_EXAMPLE) --input-spec $(CONV_SPEC) -o out/sira_conv_hls --samples 100 -q
	$(BIN)/sira csim out/sira_conv_hls

example: install
	$(BIN)/python examples/build_mlp.py
	$(BIN)/python examples/build_conv.py

test: install
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: install
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]  # 5: no slow tests collected

test-all: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/analysis_speed.py
	$(BIN)/python bench/load_speed.py
	$(BIN)/python bench/verify_speed.py
	$(BIN)/python bench/optimize_speed.py
	$(BIN)/python bench/flow_times.py
	$(BIN)/python bench/optimize_widths.py
	$(BIN)/python bench/estimate.py
	$(BIN)/python bench/build_csim.py
	$(BIN)/python bench/conformance.py
	$(BIN)/python bench/finn_flow.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
