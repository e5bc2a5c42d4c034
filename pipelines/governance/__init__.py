"""Governance: four-eyes approval of releases, the compliance evidence pack, data-subject rights and retention."""
