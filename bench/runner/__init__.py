"""The runner: plans suites into jobs, runs them (Ray), writes records; imports every layer below."""
