"""Firecracker: ``--config-file`` documents for OSv kernels (osvkit.firecracker.config)."""

from .config import FirecrackerConfig, build_firecracker_config, write_firecracker_config

__all__ = ["FirecrackerConfig", "build_firecracker_config", "write_firecracker_config"]
