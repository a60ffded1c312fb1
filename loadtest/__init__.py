"""Load tests (``loadtest.locust``) and benchmarks (``loadtest.bench``), on one stack launcher
(``loadtest.stack``) and shared test data (``corpus``, ``population``, ``repository``)."""
