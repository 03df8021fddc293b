# Two entry points for a fresh machine: `make demo` and `make test`. Both set everything up themselves:
# .venv with the package, bubblewrap and slirp4netns (apt) for agent VM sandboxes, and the pi and
# Claude Code (claude-agent-acp, run end to end by the tests against a fake Anthropic API) agents
# (npm) in the cache.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup system demo test lint bench compare clean

setup: $(VENV)/.installed system
	$(BIN)/actorq software install pi claude

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

# agent VMs: bubblewrap runs every VM process, slirp4netns carries a VM's outbound connections,
# iproute2 fences its network; chromium renders the /docs page and the web inspector in their
# browser tests (Playwright drives /usr/bin/chromium: it downloads no browser); apt-get needs root
# (or sudo) the first time only
system:
	@command -v bwrap >/dev/null && command -v slirp4netns >/dev/null && command -v ip >/dev/null \
	  && command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq bubblewrap slirp4netns iproute2 chromium; }
	@command -v npm >/dev/null || { echo "npm (Node.js 20+) is needed for the pi agent" >&2; exit 1; }

demo: setup
	$(BIN)/python examples/demo.py

lint: setup
	$(BIN)/ruff check src tests examples bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/bench_core.py
	$(BIN)/python bench/bench_agent_os.py
	$(BIN)/python bench/bench_cluster.py  # needs PostgreSQL ($$ACTORQ_BENCH_PG)

# actorq now, actorq at a baseline revision, RivetKit's peer (npm) and a bare HTTP echo, side by side
compare: setup
	$(BIN)/python bench/compare.py

clean:
	rm -rf $(VENV) .actorq .pytest_cache .mypy_cache .ruff_cache
