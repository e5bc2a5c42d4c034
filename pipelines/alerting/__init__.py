"""Alerting: Prometheus rules generated from the specs' objectives (rules.py)."""
