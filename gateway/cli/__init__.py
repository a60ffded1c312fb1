"""The ``agent-memory`` command: serve the gateway and operate it (keys, models, backup, jobs).

One module per verb group, each verb a thin call into the library; the root app is in
``gateway.cli.app``. The older ``python -m gateway[.keys|.models|.backup|.jobs]`` commands are
shims onto these modules. Nothing is imported here, so a verb loads only what it uses.
"""
