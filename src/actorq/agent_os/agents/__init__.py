"""Agent drivers: one module per agent protocol (``pi`` over its RPC mode, ``acp`` for any ACP
agent). A driver runs one agent process inside a VM's sandbox; it must not import the core."""
