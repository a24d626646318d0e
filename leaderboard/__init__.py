"""The leaderboard: a view of the run records (aggregation with pandas, rendering)."""
