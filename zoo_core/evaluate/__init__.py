"""Metrics, efficiency benchmark, comparison report and plots."""
