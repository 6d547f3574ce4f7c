# gaialake: `make run` (installs on first use, runs the pipeline on the embedded default sky)
# and `make test`. Everything runs inside .venv in the repo root.
PY      := .venv/bin/python
STAMP   := .venv/.installed
PYTEST  ?= $(PY) -m pytest
ARGS    ?=

.PHONY: install run test bench clean

$(STAMP): setup.py requirements.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip "setuptools>=77" wheel
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip install -q "pytest==8.4.2" "nbclient==0.10.2" "nbformat==5.10.4" "ipykernel==6.30.1"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m gaialake.cli pipeline $(ARGS)

test: $(STAMP)
	$(PYTEST) -q tests $(ARGS)

bench: $(STAMP)
	$(PY) -m gaialake.cli bench $(ARGS)

clean:
	rm -rf warehouse mlruns data bench_out report
