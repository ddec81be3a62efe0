"""Running a study: the runner, the report and the tools on a finished run. What they hand around sits
on lower floors (layout.py, results.py, lab.py, sweep.py), so metrics, inspectors and analysis can use it."""
