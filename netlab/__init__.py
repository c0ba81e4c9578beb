"""netlab: container network labs from a YAML topology."""
