"""Stage 4, the review: the review table (:mod:`.table`), Spotlight (:mod:`.review`,
:mod:`.layouts`), exclusions, approval, status and bundles for a teammate."""
