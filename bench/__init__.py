"""Measurements that compare the platform with a baseline in the same run."""
