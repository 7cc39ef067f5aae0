"""The run directory: its paths and manifest (:mod:`.run`), atomic writes and digests (:mod:`.atomic`), the evaluation set (:mod:`.evalset`) and the training log (:mod:`.traininglog`).

Every file of a run is read and written through one module of this package or of the stage that owns it (see docs/architecture.md)."""
