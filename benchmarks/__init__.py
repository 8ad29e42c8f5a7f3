"""Speed measurements, each next to a baseline in the same run."""
