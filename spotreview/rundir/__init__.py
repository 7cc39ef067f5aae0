"""The run directory: its paths, manifest and snapshots (:mod:`.run`), atomic writes and digests
(:mod:`.atomic`), the evaluation set (:mod:`.evalset`), the training log (:mod:`.traininglog`)
and the reviewer's exclusions (:mod:`.exclusions`).

Every file of a run is read and written by one module: of this package, or of the stage that
owns it (``analysis/`` by :mod:`spotreview.analysis.store`; see docs/architecture.md).
"""
