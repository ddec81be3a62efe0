"""Running a study: the run folder, the typed results, the lab, the batched sweep, the runner and the report."""
