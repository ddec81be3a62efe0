"""Comparing methods after a run: simplex grids, Pareto fronts, hypervolumes (no model needed)."""
