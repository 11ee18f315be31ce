"""The analytics layer: SQL over the archive (Athena in AWS, DuckDB locally), the fleet report."""
