"""Configuration: TOML in, frozen dataclasses out, or a ConfigError naming file and key."""

from gateway.config.loader import load_access_token, load_config, parse_config
from gateway.config.model import Config

__all__ = ["Config", "load_access_token", "load_config", "parse_config"]
