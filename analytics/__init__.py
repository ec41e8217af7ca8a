"""Pure computations on polars DataFrames: VEE, leaks, rollups, chart series."""
