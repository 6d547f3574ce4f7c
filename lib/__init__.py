"""gaialake: normalizing-flow science over the Gaia DR3 catalog on Spark + Delta.

Packages, by concern (layering: io, astro <- models <- science <- jobs; lib never imports jobs):

- :mod:`gaialake.io`: Spark session, Delta read/write/commit, DR3 bulk files and schema,
  Petastorm feeding, MLflow tracking.
- :mod:`gaialake.astro`: HEALPix arithmetic and cone searches.
- :mod:`gaialake.sky`: the synthetic Gaia sky generator.
- :mod:`gaialake.streams`: the stream search (patches, signal regions, ANODE/CATHODE scores,
  line finding, candidates, calibration).
- :mod:`gaialake.accreted`: accreted-star features, quality cuts and evaluation.
- :mod:`gaialake.density`: dark-matter density from the Boltzmann equation.
- :mod:`gaialake.upsample`: star-particle snapshots, the EnBiD-like baseline, the 3-sample test.
- :mod:`gaialake.bench`, :mod:`gaialake.report`: ``make bench`` and the HTML report.
- :mod:`gaialake.models` (models/): torch modules, the flow builder and the training loop.
- :mod:`gaialake.jobs` (jobs/): one thin entry point per job.
- :mod:`gaialake.conf`, :mod:`gaialake.log`, :mod:`gaialake.cli`: configuration, progress
  logging, the command line.

See README.md.
"""

__version__ = "0.1.0"
