"""Catalog and model I/O: the only place Spark, Delta, Petastorm and MLflow are touched.

- :mod:`~gaialake.io.dr3schema`: the Gaia DR3 ``gaia_source`` columns and ESA's ECSV header.
- :mod:`~gaialake.io.bulkfile`: read/write ``GaiaSource_*.csv.gz`` with pyarrow (no Spark).
- :mod:`~gaialake.io.catalogio`: list bulk files, turn parsed blocks into Spark rows.
- :mod:`~gaialake.io.catalogload`: a batch of bulk files into ``gaia_source``: staging,
  duplicates, the Spark and arrow writers, the ``ingest_log`` records.
- :mod:`~gaialake.io.spark`: the Spark session factory (local, standalone, Databricks).
- :mod:`~gaialake.io.delta`: Delta tables: write with idempotent replace, register, read.
- :mod:`~gaialake.io.deltafiles`: Delta data files written by pyarrow on executors.
- :mod:`~gaialake.io.deltaread`: read a Delta snapshot without Spark.
- :mod:`~gaialake.io.sqlquery`: read-only SQL (cone searches expanded, writes refused).
- :mod:`~gaialake.io.hatsfiles`: the HATS catalog on disk (lsdb's format), written by pyarrow.
- :mod:`~gaialake.io.hatsexport`: a table as a HATS catalog (``gaialake export hats``).
- :mod:`~gaialake.io.queryfile`: a query's rows as FITS, VOTable, ECSV or Parquet with units.
- :mod:`~gaialake.io.feeding`: a task's torch device and Petastorm loaders over DataFrames.
- :mod:`~gaialake.io.tracking`: MLflow runs, torch models as pyfunc wrappers, the registry.
"""
