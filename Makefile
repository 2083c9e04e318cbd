# The two commands of the README:  `make book`  and  `make test` (ruff's lint, then pytest).
# Both create (or refresh, when pyproject.toml changes) their own virtual environment in .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Notebooks run for the book; each in "report" mode, reading recorded runs under results/.
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
EXECUTED  := $(patsubst notebooks/%.ipynb,book/executed/%.ipynb,$(NOTEBOOKS))

.PHONY: book test test-all venv clean pages notebooks bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[book,test]"
	touch $(STAMP)

pages: $(STAMP)
	$(PY) -m fr.book

book/executed/%.ipynb: notebooks/%.ipynb $(STAMP) $(shell find fr -name '*.py') $(shell find results -type f 2>/dev/null)
	@mkdir -p book/executed book/.partial
	$(PY) -m papermill --cwd notebooks -k python3 --no-progress-bar $< book/.partial/$*.ipynb
	mv book/.partial/$*.ipynb $@

notebooks: $(EXECUTED)

book: pages notebooks
	$(VENV)/bin/jupyter-book build --keep-going -W -n . 
	@echo "Book built: _build/html/index.html"

test: $(STAMP)
	$(VENV)/bin/ruff check fr tests benchmarks scripts notebooks
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m "" 

bench: $(STAMP)
	$(PY) benchmarks/bench_heads.py
	$(PY) benchmarks/bench_eval.py
	$(PY) benchmarks/bench_eval_suite.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_loader.py

clean:
	rm -rf _build book/executed book/heads
