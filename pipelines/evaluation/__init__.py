"""Evaluation: holdout metrics, slices, behavioural checks, reports and the gate."""
