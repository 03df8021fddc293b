"""Agent drivers: one live agent process per session, run inside a VM's sandbox.

Owns: ``base`` (the ``AgentDriver`` protocol every driver implements, ``DriverOptions``, and the
values sessions return: ``Session``, ``PromptResult``), ``process`` (``AgentProcess``, the base of
every driver: start in the sandbox, stderr tail, secret masking, shutdown), and one module per
agent protocol on top of it: ``pi`` (pi's RPC mode) and ``acp`` (any Agent Client Protocol agent).

A driver gets a launcher and an event callback from the VM; it never opens host paths (an ACP
agent's file requests go through the VM's own file actions). May import the rest of
``actorq.agent_os`` below the actor type (``sandbox``, ``process``, ``software``) and
``actorq.errors``; must not import the core, the server, the clients or storage.
"""
