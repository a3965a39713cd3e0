"""The feed simulator: the departments' interfaces served over HTTP with synthetic data."""
