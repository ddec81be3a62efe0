"""Comparing methods after a run: simplex grids, Pareto fronts, hypervolumes, success under both signs (no model needed)."""
