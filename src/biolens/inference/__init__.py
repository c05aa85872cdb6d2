"""Running trained networks over data too large for one pass (whole images of any size)."""
