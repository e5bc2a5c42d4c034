"""Deployment: the plan that splits traffic between model versions."""
