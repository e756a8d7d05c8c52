"""Proliferate: a self-hosted error tracker. Importing the package has no side effects."""

__version__ = '0.2.0'
