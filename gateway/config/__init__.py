"""Configuration: TOML in, frozen dataclasses out, or a ConfigError naming file and key."""

from gateway.config.loader import config_warnings, load_access_token, load_config, parse_config
from gateway.config.model import Config

__all__ = ["Config", "config_warnings", "load_access_token", "load_config", "parse_config"]
