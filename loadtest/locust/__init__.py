"""The load-test kit: Locust scenarios and their runner, the seeder, the report (figures, knee,
plots), the campaign, chaos runs, and the Triton-only sweep with its perf_analyzer inputs.
Imports nothing from the benchmarks (``loadtest.bench``)."""
