"""Evaluation: FVD, KVD and FAD with feature extractors written here that load the standard
weight files strictly and never download."""
