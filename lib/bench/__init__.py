"""``make bench``: measuring side by side, and BENCHMARKS.md.

- :mod:`~gaialake.bench.kit`: wall time and peak RSS of a process tree; jobs run as processes.
- :mod:`~gaialake.bench.ingest_bench`: ingest against pyarrow and hats-import on the same files.
- :mod:`~gaialake.bench.hats_import`: the hats-import baseline (runs in ``.venv-hats``).
- :mod:`~gaialake.bench.export_bench`: ``gaialake export hats`` on the ingested warehouse.
- :mod:`~gaialake.bench.pipeline_bench`: scaling with the sky's size, ``make run`` per stage.
- :mod:`~gaialake.bench.train_bench`: the training feed and scoring benchmarks.
- :mod:`~gaialake.bench.markdown`: BENCHMARKS.md from one run's results.
"""
