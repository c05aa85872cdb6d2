"""Classical statistical genetics: per-site and pairwise regression tests, linkage, multiple testing."""
