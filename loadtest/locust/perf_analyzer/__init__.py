"""perf_analyzer kit: ``--input-data`` JSON generated from the model configs, and the command
lines that use it (README.md beside this file; ``sweep.sh`` runs them in the NGC SDK image)."""
