"""A Faust worker running only the rules' partial stage (`agents.rules_partial_agent.register_partial`),
which the worker command does not register on its own yet: for the integration tests.

    python -m tests.integration.partial_worker --config watchkeeper.yaml
"""

from __future__ import annotations

import argparse
import logging

from watchkeeper.agents.app import create_app, make_worker
from watchkeeper.agents.rules_partial_agent import register_partial
from watchkeeper.agents.rules_wiring import load_rules
from watchkeeper.commands.worker import rules_agent_settings, worker_settings
from watchkeeper.plumbing.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    cfg = load_config(args.config)
    settings = rules_agent_settings(cfg)
    loaded = load_rules(settings)
    assert loaded is not None, "no rules configured"
    app = create_app(worker_settings(cfg, agents=()))
    register_partial(app, settings, loaded)
    logging.basicConfig(level=logging.INFO)
    make_worker(app, "info").execute_from_commandline()


if __name__ == "__main__":
    main()
