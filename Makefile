# gaialake: `make run` (installs on first use, runs the pipeline on the embedded default sky)
# and `make test`. Everything runs inside .venv in the repo root.
PY      := .venv/bin/python
STAMP   := .venv/.installed
PYTEST  ?= $(PY) -m pytest
ARGS    ?=
# hats-import, the HATS importer that `make bench` measures ingest against, and lsdb, which
# `make test` opens `gaialake export hats` catalogs with, in their own venv: they need numpy >= 2
# and pandas >= 3, which cannot live beside gaialake's numpy 1.26. Tested on Python 3.11.
# `make bench` runs lib/bench/hatsimport_run.py with .venv-hats/bin/python. lsdb 0.11.1 is the
# release that pins hats 0.11 (hats>=0.11.1,<0.12).
HATS_PINS  := hats-import==0.11.1 hats==0.11.1 lsdb==0.11.1 nested-pandas==0.7.2 \
              dask==2026.8.0 distributed==2026.8.0 pandas==3.1.1 pyarrow==26.0.1 numpy==2.4.6
HATS_STAMP := .venv-hats/.installed

.PHONY: install run test bench bench-streams clean .venv-hats chromium

# The report's browser tests render pages in headless Chromium: Debian's `chromium`, installed
# when missing (as root, or with password-less sudo). Where it cannot be installed, those three
# tests are deselected and the reason printed; everything else runs.
BROWSER_TESTS := tests/report/test_html.py::test_report_renders_its_images_in_chromium \
                 tests/report/test_html.py::test_a_missing_image_is_detected \
                 tests/jobs/test_pipeline.py::test_report_has_rendered_figures
HAVE_CHROMIUM = command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
                || command -v google-chrome >/dev/null 2>&1

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

chromium:
	@$(HAVE_CHROMIUM) || { \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  if command -v apt-get >/dev/null 2>&1 && { [ -z "$$SUDO" ] || sudo -n true 2>/dev/null; }; then \
	    echo "make test: installing Debian's chromium for the report's browser tests"; \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || true; \
	  fi; }

test: $(STAMP) chromium .venv-hats
	@if $(HAVE_CHROMIUM); then $(PYTEST) -q tests $(ARGS); else \
	  echo "make test: SKIPPING the 3 browser tests: Chromium is not installed and could not be" \
	       "installed here (needs apt-get as root or password-less sudo): apt-get install chromium"; \
	  $(PYTEST) -q tests $(foreach t,$(BROWSER_TESTS),--deselect $(t)) $(ARGS); fi

# A failed install does not stop `make bench`: BENCHMARKS.md then says why hats-import is missing.
$(HATS_STAMP): Makefile
	(test -x .venv-hats/bin/python || python3 -m venv .venv-hats) && \
	.venv-hats/bin/pip install -q $(HATS_PINS) && touch $(HATS_STAMP) || \
	echo "hats-import/lsdb not installed: make bench reports it in BENCHMARKS.md," \
	     "the export tests skip"

.venv-hats: $(HATS_STAMP)

bench: $(STAMP) .venv-hats
	$(PY) -m gaialake.cli bench $(ARGS)

# The real-density stream benchmark (GD-1 at DR3 density + stream-free skies; <= 90 min on 2
# cores): its section of BENCHMARKS.md. ARGS adds --set overrides.
bench-streams: $(STAMP)
	$(PY) -m gaialake.cli bench --streams --conf conf/bench_streams.yaml $(ARGS)

clean:
	rm -rf warehouse warehouse_densitymock mlruns data/synthetic data/density_mock bench_out report \
	       warehouse_nostreams* mlruns_nostreams* report_nostreams*
