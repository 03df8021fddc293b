"""The VM actor's actions, one module per concern, and the one table of them (``ACTIONS``).

Owns: ``files`` (read/write/list/move/delete), ``processes`` (exec, spawn and the process table),
``shells`` (interactive terminals), ``history`` (numbered events to catch up on), ``sessions``
(agent sessions and prompts), ``network`` (``vm_fetch``), ``previews`` (signed preview URLs),
``cron`` (jobs and their firing, ``cron_tick``) and ``snapshots`` (the wake/sleep side of moving
``/home/user`` between nodes; hooks, not actions). Each action takes the actor context, as the core
calls it, and works on the VM's :class:`~actorq.agent_os.machine.Machine` (``running(c)`` /
``under_cap(c)``); the mechanisms behind them (``files.py``, ``processes.py``, ``sessions.py``,
``fetch.py``, ``preview.py``, ``cron.py``, ``snapshot.py``) know nothing of actors.

Imports the core's ``ActorContext`` and the rest of ``actorq.agent_os``; must not import the
server, the clients or storage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from actorq.agent_os.actions import (
    cron,
    files,
    history,
    network,
    permissions,
    previews,
    processes,
    sessions,
    shells,
    usage,
)

# name -> action, as clients call them (agentOS's names in snake_case); agent_os() declares these
ACTIONS: Mapping[str, Callable[..., Awaitable[Any]]] = {
    "create_session": sessions.create_session,
    "send_prompt": sessions.send_prompt,
    "cancel_prompt": sessions.cancel_prompt,
    "close_session": sessions.close_session,
    "list_sessions": sessions.list_sessions,
    "resume_session": sessions.resume_session,
    "get_modes": sessions.get_modes,
    "set_mode": sessions.set_mode,
    "get_config_options": sessions.get_config_options,
    "set_config_option": sessions.set_config_option,
    "set_model": sessions.set_model,
    "read_file": files.read_file,
    "write_file": files.write_file,
    "read_files": files.read_files,
    "write_files": files.write_files,
    "mkdir": files.mkdir,
    "readdir": files.readdir,
    "readdir_recursive": files.readdir_recursive,
    "stat": files.stat,
    "exists": files.exists,
    "move": files.move,
    "delete_file": files.delete_file,
    "exec": processes.exec_,
    "spawn": processes.spawn,
    "wait_process": processes.wait_process,
    "list_processes": processes.list_processes,
    "kill_process": processes.kill_process,
    "write_process_stdin": processes.write_process_stdin,
    "close_process_stdin": processes.close_process_stdin,
    "open_shell": shells.open_shell,
    "write_shell": shells.write_shell,
    "resize_shell": shells.resize_shell,
    "close_shell": shells.close_shell,
    "get_events": history.get_events,
    "get_session_events": history.get_session_events,
    "get_usage": usage.get_usage,
    "vm_fetch": network.vm_fetch,
    "create_signed_preview_url": previews.create_signed_preview_url,
    "expire_signed_preview_url": previews.expire_signed_preview_url,
    "list_preview_urls": previews.list_preview_urls,
    "preview_request": previews.preview_request,
    "schedule_cron": cron.schedule_cron,
    "list_cron_jobs": cron.list_cron_jobs,
    "cancel_cron_job": cron.cancel_cron_job,
    "cron_tick": cron.cron_tick,
    # held tool calls of agents (permissions.py); permission_resume is internal, like cron_tick
    "list_permission_requests": permissions.list_permission_requests,
    "respond_permission": permissions.respond_permission,
    "permission_resume": permissions.permission_resume,
}

__all__ = ["ACTIONS"]
