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

# Executed copies show results with their code folded behind a toggle (fr.book --hide-inputs tags the cells).
book/executed/%.ipynb: notebooks/%.ipynb $(STAMP) $(shell find fr -name '*.py') $(shell find results -type f -not -path 'results/book/*' 2>/dev/null)
	@mkdir -p book/executed book/.partial
	$(PY) -m papermill --cwd notebooks -k python3 --no-progress-bar $< book/.partial/$*.ipynb
	$(PY) -m fr.book --hide-inputs book/.partial/$*.ipynb
	mv book/.partial/$*.ipynb $@

# A renamed or removed notebook's old executed copy would still be globbed into the book's table of contents,
# and Sphinx leaves the old page in _build/html: both go.
notebooks: $(EXECUTED)
	@for f in book/executed/*.ipynb; do n="$${f##*/}"; [ -e "$$f" ] && [ ! -e "notebooks/$$n" ] && \
	  rm -fv "$$f" "_build/html/book/executed/$${n%.ipynb}.html"; done; true

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
	rm -rf _build book/executed book/heads book/generated
