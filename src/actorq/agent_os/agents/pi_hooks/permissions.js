// actorq's permission hook for pi, shipped with actorq and mounted read-only into the VM (with
// software.pi) at /opt/actorq-pi-hooks; pi loads it with --no-extensions --extension <this file>
// when a session has a permission policy. Each tool call goes to the VM's policy: an "input"
// dialog titled "actorq-permission" over pi's RPC, answered with {"allow": bool, "reason": str}.
export default function (pi) {
  // its mark: the driver checks (get_commands) that this file, at this path, is what pi loaded
  pi.registerCommand("actorq-permissions", {
    description: "actorq's permission hook (every tool call is decided by the VM's policy)",
    handler: async () => {},
  });
  pi.on("tool_call", async (event, ctx) => {
    const message = JSON.stringify({ tool: event.toolName, input: event.input ?? null });
    const answer = await ctx.ui.input("actorq-permission", message, { signal: ctx.signal });
    let verdict = null;
    try {
      verdict = typeof answer === "string" ? JSON.parse(answer) : null;
    } catch {
      verdict = null;
    }
    if (verdict && verdict.allow === true) return undefined;
    return { block: true, reason: (verdict && verdict.reason) || "Permission denied (no answer)" };
  });
}
