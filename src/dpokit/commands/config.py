"""`dpokit config`: print the default (or resolved) config, or the valid keys and aliases."""

from __future__ import annotations

from dpokit.config import dump_config, load_config
from dpokit.config_keys import ALIASES, documented_keys


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("what", nargs="?", choices=["show", "keys"], default="show")
    p.add_argument("config", nargs="?", help="a YAML config to resolve (default: built-in defaults)")
    p.add_argument("overrides", nargs="*", help="key=value overrides")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.what == "keys":
        for key in documented_keys():
            print(key)
        print("\naliases (flat names from PAI-QuickStart, TRL and LLaMA-Factory):")
        for alias, target in sorted(ALIASES.items()):
            print(f"  {alias}  ->  {target or '(accepted, ignored)'}")
        print("\nA key's last part alone (learning_rate, beta) works too where it is unique.")
        return 0
    config_path, overrides = args.config, list(args.overrides)
    if config_path and "=" in config_path:  # only overrides were given
        config_path, overrides = None, [config_path] + overrides
    print(dump_config(load_config(config_path, overrides)), end="")
    return 0
