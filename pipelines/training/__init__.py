"""Training: time-split datasets from the FeatureService and the model families that fit them."""
