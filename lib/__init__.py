"""gaialake: normalizing-flow science over the Gaia DR3 catalog on Spark + Delta.

Subpackages: ``gaialake`` (lib/: catalog schema, HEALPix, Spark/Delta I/O, synthetic sky,
science functions), ``gaialake.models`` (flows, classifiers, MLflow wrappers) and
``gaialake.jobs`` (one entry point per job). See DESIGN.md in the shared folder and README.md.
"""

__version__ = "0.1.0"
